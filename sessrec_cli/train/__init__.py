"""The shared trainer core and the stage registry."""
