"""Full-catalogue ranking, metrics over ranks, reports."""
