"""Deterministic generator of the small sample dataset bundled in `data/sample/raw`.

The generative process, all driven by one seeded numpy generator:

1. Items. Each item gets a primary genre (one of 20) and, sometimes, a secondary one, a
   power-law popularity, and a title and one-sentence description built from word lists of
   its genre, so that text-based item and user profiles have something to work with.
2. Transitions. Each item gets a few likely successors with decreasing weights: mostly items
   of its own genre, one from its secondary (or a random) genre. Successors are drawn by
   popularity, so popular items are also popular destinations.
3. Users. Each user prefers one or two genres and has 3-8 sessions on distinct days of a
   60-day window starting 2024-01-01 UTC.
4. Sessions. A session picks one of the user's genres and starts at a popular item of it.
   Each next item follows a successor of the current item most of the time, otherwise it is
   a popular item of the session's genre or, rarely, of the whole catalogue. Events are
   10-300 seconds apart.

The successor structure is what a next-item model can learn and a popularity baseline
cannot, which `tests/test_sample.py` checks.

Run `python -m sessrec_cli.data.sample [OUT_DIR] [--seed N]` (default `data/sample/raw`).
`generate_large` (`sessrec sample --rows N`) writes a session log of any size the same way,
vectorised and in chunks, for scale tests.
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from sessrec_cli.io import atomic_file, write_text_atomic

START_TIME = int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp())
N_DAYS = 60
SECONDS_PER_DAY = 86_400

# Genre -> (words that go into its titles, what its stories are about).
GENRES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Mystery": (("Harbor", "Cipher", "Locket", "Manor", "Alibi", "Clue"), ("a missing heiress", "a locked-room murder", "a stolen letter")),
    "Romance": (("Heart", "Kiss", "Summer", "Promise", "Letters", "Waltz"), ("two rivals falling in love", "a second chance at love", "a holiday romance")),
    "Sci-Fi": (("Orbit", "Signal", "Android", "Nebula", "Colony", "Quantum"), ("a crew lost in deep space", "a rogue artificial mind", "first contact")),
    "Fantasy": (("Dragon", "Crown", "Sword", "Spell", "Realm", "Oracle"), ("a reluctant chosen one", "a war between old kingdoms", "a stolen enchantment")),
    "Horror": (("Shadow", "Crypt", "Whisper", "Hollow", "Curse", "Mask"), ("a haunted farmhouse", "something in the woods", "a cursed heirloom")),
    "Thriller": (("Protocol", "Target", "Deadline", "Agent", "Trigger", "Ransom"), ("a spy on the run", "a conspiracy inside the government", "a kidnapping")),
    "Comedy": (("Mixup", "Party", "Wedding", "Roommates", "Holiday", "Blunder"), ("a wedding gone wrong", "hopeless roommates", "a family road trip")),
    "Drama": (("River", "Silence", "Homecoming", "Winter", "Inheritance", "Bridge"), ("a family torn apart", "a long way back home", "a difficult inheritance")),
    "Documentary": (("Planet", "Oceans", "Frontier", "Archive", "Machines", "Voices"), ("life in the deep sea", "the history of computing", "disappearing cultures")),
    "Animation": (("Paws", "Balloon", "Robot", "Kingdom", "Lantern", "Sprout"), ("a brave little robot", "talking forest animals", "a magical lantern")),
    "Western": (("Canyon", "Saddle", "Outlaw", "Frontier", "Sheriff", "Dust"), ("an outlaw seeking redemption", "a railroad town", "a cattle drive")),
    "Historical": (("Empire", "Throne", "Revolution", "Dynasty", "Chronicle", "Siege"), ("a queen's rise to power", "a nation in revolution", "a forgotten dynasty")),
    "Adventure": (("Expedition", "Island", "Treasure", "Compass", "Jungle", "Voyage"), ("a hunt for lost treasure", "a jungle expedition", "a shipwrecked crew")),
    "Crime": (("Heist", "Syndicate", "Vault", "Street", "Racket", "Witness"), ("a bank heist", "a detective chasing a syndicate", "a witness in hiding")),
    "Musical": (("Melody", "Stage", "Encore", "Rhythm", "Chorus", "Ballad"), ("a struggling band", "a Broadway audition", "a singer's big break")),
    "Sports": (("Champion", "Rookie", "Finals", "Comeback", "Underdog", "Season"), ("an underdog team", "a boxer's comeback", "a rookie's first season")),
    "Biography": (("Portrait", "Legacy", "Memoir", "Pioneer", "Visionary", "Life"), ("a pioneering scientist", "a self-made artist", "a famous inventor")),
    "Family": (("Home", "Puppy", "Treehouse", "Sisters", "Grandpa", "Picnic"), ("siblings on a summer trip", "a rescued puppy", "a grandfather's secret")),
    "War": (("Front", "Battalion", "Trench", "Armistice", "Resistance", "Flight"), ("soldiers behind enemy lines", "a resistance cell", "a pilot's last mission")),
    "Noir": (("Rain", "Smoke", "Neon", "Dame", "Midnight", "Gin"), ("a private eye framed for murder", "a femme fatale", "a corrupt city")),
}
GENRE_NAMES = tuple(GENRES)
ADJECTIVES = (
    "Crimson", "Silent", "Golden", "Broken", "Hidden", "Last", "Wild", "Midnight", "Silver",
    "Lonely", "Burning", "Frozen", "Distant", "Secret", "Electric", "Velvet", "Iron", "Falling",
)
TONES = ("gripping", "gentle", "dark", "witty", "sweeping", "quiet", "fast-paced", "heartfelt")
SETTINGS = ("in a small coastal town", "in a sprawling city", "across three generations", "over one long night", "in a remote valley", "at the edge of the world")
OCCUPATIONS = (
    "student", "engineer", "teacher", "nurse", "artist", "writer", "lawyer", "retired",
    "sales", "technician", "scientist", "homemaker", "programmer", "doctor", "administrator", "marketing",
)

# Successor weights of one item: the first successor is the most likely next item.
SUCCESSOR_WEIGHTS = np.array([0.45, 0.25, 0.18, 0.12])
SUCCESSOR_CDF = np.cumsum(SUCCESSOR_WEIGHTS)
# What produces the next item of a session; the shares sum to 1.
P_FOLLOW_SUCCESSOR = 0.65
P_SESSION_GENRE = 0.25  # the rest: any item, by popularity


@dataclass
class Catalogue:
    genres: list[list[int]]  # per item: primary genre, then maybe a secondary one
    popularity: np.ndarray  # per item, unnormalised
    genre_items: list[np.ndarray]  # per genre: items whose primary genre it is
    genre_cdfs: list[np.ndarray]  # per genre: popularity CDF over genre_items
    successors: np.ndarray  # (n_items, len(SUCCESSOR_WEIGHTS))


def _draw(rng: np.random.Generator, cdf: np.ndarray) -> int:
    """Index drawn with the probabilities that the (unnormalised) CDF encodes.

    Faster than `rng.choice(p=...)`, which rebuilds the CDF on every call.
    """
    return int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))


def _make_catalogue(rng: np.random.Generator, n_items: int) -> Catalogue:
    n_genres = len(GENRE_NAMES)
    # Equal-sized genres, so that every genre has enough items to draw successors from.
    primary = rng.permutation(np.arange(n_items) % n_genres)
    genres = []
    for g in primary:
        if rng.random() < 0.3:
            # A secondary genre links two clusters, and some transitions follow that link.
            second = (g + rng.integers(1, n_genres)) % n_genres
            genres.append([int(g), int(second)])
        else:
            genres.append([int(g)])
    # Power law over a random ranking: a few hits and a long tail, some of it rare enough
    # (under 5 occurrences) to exercise the preprocessing filter.
    ranks = rng.permutation(n_items)
    popularity = 1.0 / (ranks + 10.0) ** 0.9
    genre_items = [np.flatnonzero(primary == g) for g in range(n_genres)]
    genre_cdfs = [np.cumsum(popularity[items]) for items in genre_items]

    def popular_in(genre: int, exclude: set[int]) -> int:
        items, cdf = genre_items[genre], genre_cdfs[genre]
        while True:
            item = int(items[_draw(rng, cdf)])
            if item not in exclude or len(exclude) >= len(items):
                return item

    successors = np.empty((n_items, len(SUCCESSOR_WEIGHTS)), dtype=np.int64)
    for item, item_genres in enumerate(genres):
        chosen: set[int] = {item}
        row = []
        for slot in range(len(SUCCESSOR_WEIGHTS)):
            if slot < len(SUCCESSOR_WEIGHTS) - 1:
                genre = item_genres[0]
            else:
                genre = item_genres[1] if len(item_genres) > 1 else int(rng.integers(n_genres))
            successor = popular_in(genre, chosen)
            chosen.add(successor)
            row.append(successor)
        successors[item] = row
    return Catalogue(genres, popularity, genre_items, genre_cdfs, successors)


def _session_items(rng: np.random.Generator, cat: Catalogue, genre: int, length: int, all_cdf: np.ndarray) -> list[int]:
    item = int(cat.genre_items[genre][_draw(rng, cat.genre_cdfs[genre])])
    items = [item]
    while len(items) < length:
        u = rng.random()
        if u < P_FOLLOW_SUCCESSOR:
            item = int(cat.successors[item, _draw(rng, SUCCESSOR_CDF)])
        elif u < P_FOLLOW_SUCCESSOR + P_SESSION_GENRE:
            item = int(cat.genre_items[genre][_draw(rng, cat.genre_cdfs[genre])])
        else:
            item = _draw(rng, all_cdf)
        items.append(item)
    return items


def _item_text(rng: np.random.Generator, item_genres: list[int], used_titles: set[str]) -> tuple[str, str]:
    primary = GENRE_NAMES[item_genres[0]]
    words, subjects = GENRES[primary]
    while True:
        title = f"{rng.choice(ADJECTIVES)} {rng.choice(words)} {rng.choice(words + (primary,))}"
        # Repeated words ("Dragon Dragon") read badly; duplicate titles would confuse profiles.
        parts = title.split()
        if len(set(parts)) == len(parts) and title not in used_titles:
            used_titles.add(title)
            break
    description = f"A {rng.choice(TONES)} {primary.lower()} story about {rng.choice(subjects)} {rng.choice(SETTINGS)}"
    if len(item_genres) > 1:
        description += f" with a touch of {GENRE_NAMES[item_genres[1]].lower()}"
    return title, description + "."


def _to_csv(header: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _ids(prefix: str, n: int, min_width: int) -> list[str]:
    width = max(min_width, len(str(n)))
    return [f"{prefix}{k:0{width}d}" for k in range(1, n + 1)]


def generate_sample(out_dir: Path, seed: int = 7, n_users: int = 800, n_items: int = 1000) -> dict:
    """Write users.csv, items.csv and interactions.csv into `out_dir`; return the counts.

    The same arguments always give byte-identical files.
    """
    # Below this a genre cannot fill its successor lists; above it titles run out.
    if not 4 * len(GENRE_NAMES) <= n_items <= 5000:
        raise ValueError(f"n_items must be between {4 * len(GENRE_NAMES)} and 5000, got {n_items}")
    if n_users < 1:
        raise ValueError(f"n_users must be positive, got {n_users}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    cat = _make_catalogue(rng, n_items)
    all_cdf = np.cumsum(cat.popularity)
    item_ids = _ids("i", n_items, 4)
    user_ids = _ids("u", n_users, 4)

    used_titles: set[str] = set()
    item_rows = []
    for item, item_genres in enumerate(cat.genres):
        title, description = _item_text(rng, item_genres, used_titles)
        genres = "|".join(GENRE_NAMES[g] for g in item_genres)
        item_rows.append([item_ids[item], title, genres, description])

    user_rows = []
    sessions = []  # (start time, user index, events)
    for user in range(n_users):
        n_preferred = 1 if rng.random() < 0.4 else 2
        preferred = [int(g) for g in rng.choice(len(GENRE_NAMES), size=n_preferred, replace=False)]
        age = int(np.clip(round(rng.normal(34, 11)), 16, 75))
        gender = str(rng.choice(["F", "M", "X"], p=[0.48, 0.48, 0.04]))
        occupation = str(rng.choice(OCCUPATIONS))
        user_rows.append([user_ids[user], age, gender, occupation, "|".join(GENRE_NAMES[g] for g in preferred)])

        n_sessions = int(rng.integers(3, 9))
        # Distinct days and starts before 22:00 keep one user's sessions from overlapping.
        days = np.sort(rng.choice(N_DAYS, size=n_sessions, replace=False))
        for day in days:
            # Two preferred genres: the first one is the main interest.
            genre = preferred[0] if n_preferred == 1 or rng.random() < 0.7 else preferred[1]
            length = int(np.clip(2 + rng.poisson(7.5), 2, 18))
            items = _session_items(rng, cat, genre, length, all_cdf)
            start = START_TIME + int(day) * SECONDS_PER_DAY + int(rng.integers(7 * 3600, 22 * 3600))
            times = start + np.concatenate([[0], np.cumsum(rng.integers(10, 301, size=length - 1))])
            sessions.append((start, user, list(zip(items, times.tolist()))))

    # Session ids follow start time, so the file reads in chronological order.
    sessions.sort(key=lambda s: (s[0], s[1]))
    session_ids = _ids("s", len(sessions), 5)
    interaction_rows = [
        [session_ids[k], user_ids[user], item_ids[item], t]
        for k, (_, user, events) in enumerate(sessions)
        for item, t in events
    ]

    write_text_atomic(out_dir / "users.csv", _to_csv(["user_id", "age", "gender", "occupation", "favourite_genres"], user_rows))
    write_text_atomic(out_dir / "items.csv", _to_csv(["item_id", "title", "genres", "description"], item_rows))
    write_text_atomic(out_dir / "interactions.csv", _to_csv(["session_id", "user_id", "item_id", "timestamp"], interaction_rows))
    return {"users": n_users, "items": n_items, "sessions": len(sessions), "interactions": len(interaction_rows)}


# --- a large session log, for scale tests ------------------------------------------------------
#
# The same ideas, vectorised with numpy and written in chunks so that memory stays bounded at
# any size: items in genres with power-law popularity and a few likely successors, sessions
# that start at a popular item of one genre and mostly follow successors. Only interactions are
# written (session_id,item_id,timestamp), with integer ids as in raw click logs.

LARGE_ITEMS_PER_GENRE = 1000  # a cluster small enough that successors within it mean something
LARGE_SESSIONS_PER_CHUNK = 1_000_000  # part of the random stream: changing it changes the output
LARGE_EXTRA_CLICKS = 4.0  # session length is 1 + Poisson(4): mean 5, about 2% length-1 sessions
LARGE_MAX_LENGTH = 50
LARGE_DAYS = 90


@dataclass
class LargeCatalogue:
    by_genre: np.ndarray  # item indices grouped by genre, in genre order
    genre_start: np.ndarray  # (n_genres + 1,) offsets of each genre's block in `by_genre`
    genre_cdf: np.ndarray  # popularity CDF along `by_genre`, running across genre blocks
    all_cdf: np.ndarray  # popularity CDF over the whole catalogue

    @property
    def n_genres(self) -> int:
        return len(self.genre_start) - 1

    def popular_in(self, rng: np.random.Generator, genres: np.ndarray) -> np.ndarray:
        """One item per entry of `genres`, drawn by popularity within that genre."""
        start, end = self.genre_start[genres], self.genre_start[genres + 1]
        below = np.where(start > 0, self.genre_cdf[start - 1], 0.0)
        point = below + rng.random(len(genres)) * (self.genre_cdf[end - 1] - below)
        # Rounding may land a point on the block's upper edge: keep it inside the block.
        position = np.clip(np.searchsorted(self.genre_cdf, point, side="right"), start, end - 1)
        return self.by_genre[position]

    def popular(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.searchsorted(self.all_cdf, rng.random(n) * self.all_cdf[-1], side="right")


def _large_catalogue(rng: np.random.Generator, n_items: int) -> tuple[LargeCatalogue, np.ndarray]:
    """The catalogue and each item's successors, (n_items, len(SUCCESSOR_WEIGHTS))."""
    n_genres = max(1, n_items // LARGE_ITEMS_PER_GENRE)
    genre = rng.permutation(np.arange(n_items) % n_genres)
    popularity = 1.0 / (rng.permutation(n_items) + 10.0) ** 0.9  # as in the bundled sample
    by_genre = np.argsort(genre, kind="stable")
    genre_start = np.searchsorted(genre[by_genre], np.arange(n_genres + 1))
    cat = LargeCatalogue(by_genre, genre_start, np.cumsum(popularity[by_genre]), np.cumsum(popularity))
    # Three successors from the item's own genre, the last from a random one (a link between clusters).
    n_own = len(SUCCESSOR_WEIGHTS) - 1
    own = cat.popular_in(rng, np.repeat(genre, n_own)).reshape(n_items, n_own)
    other = cat.popular_in(rng, rng.integers(n_genres, size=n_items))
    return cat, np.column_stack([own, other])


def _large_sessions(rng: np.random.Generator, cat: LargeCatalogue, successors: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(n_sessions, max length) item matrix; entries past a session's length are unused."""
    n = len(lengths)
    items = np.empty((n, int(lengths.max())), dtype=np.int64)
    genres = rng.integers(cat.n_genres, size=n)
    items[:, 0] = cat.popular_in(rng, genres)
    for step in range(1, items.shape[1]):
        active = np.flatnonzero(lengths > step)
        current = items[active, step - 1]
        slot = np.searchsorted(SUCCESSOR_CDF, rng.random(len(active)) * SUCCESSOR_CDF[-1], side="right")
        following = successors[current, slot]
        source = rng.random(len(active))
        in_genre = (source >= P_FOLLOW_SUCCESSOR) & (source < P_FOLLOW_SUCCESSOR + P_SESSION_GENRE)
        following[in_genre] = cat.popular_in(rng, genres[active[in_genre]])
        anywhere = source >= P_FOLLOW_SUCCESSOR + P_SESSION_GENRE
        following[anywhere] = cat.popular(rng, int(anywhere.sum()))
        items[active, step] = following
    return items


def default_large_items(rows: int) -> int:
    """About 100 clicks per item, between 100 and 1M items (1M at 100M rows)."""
    return min(1_000_000, max(100, rows // 100))


def generate_large(path: Path, rows: int, seed: int = 7, n_items: int | None = None) -> dict:
    """Write a session log of exactly `rows` clicks to `path` (CSV: session_id,item_id,timestamp).

    Sessions start as a Poisson process over `LARGE_DAYS` days from 2024-01-01 UTC, so session
    ids and rows follow start time; clicks are 10-300 seconds apart. Memory stays bounded by one
    chunk of `LARGE_SESSIONS_PER_CHUNK` sessions, and the same arguments give the same bytes.
    """
    if rows < 1:
        raise ValueError(f"rows must be positive, got {rows}")
    n_items = default_large_items(rows) if n_items is None else n_items
    if n_items < len(SUCCESSOR_WEIGHTS):
        raise ValueError(f"n_items must be at least {len(SUCCESSOR_WEIGHTS)}, got {n_items}")
    rng = np.random.default_rng(seed)
    cat, successors = _large_catalogue(rng, n_items)
    mean_gap = LARGE_DAYS * SECONDS_PER_DAY / (rows / (1 + LARGE_EXTRA_CLICKS))  # between session starts
    written = n_sessions = 0
    last_start = 0.0
    with atomic_file(path) as handle:
        while written < rows:
            lengths = np.minimum(1 + rng.poisson(LARGE_EXTRA_CLICKS, size=LARGE_SESSIONS_PER_CHUNK), LARGE_MAX_LENGTH)
            ends = np.cumsum(lengths)
            if ends[-1] >= rows - written:  # the last chunk: cut the session that crosses `rows`
                last = int(np.searchsorted(ends, rows - written))
                lengths = lengths[: last + 1]
                lengths[-1] -= ends[last] - (rows - written)
            items = _large_sessions(rng, cat, successors, lengths)
            starts = last_start + np.cumsum(rng.exponential(mean_gap, size=len(lengths)))
            last_start = float(starts[-1])
            gaps = rng.integers(10, 301, size=items.shape)
            gaps[:, 0] = 0
            times = START_TIME + starts.astype(np.int64)[:, None] + np.cumsum(gaps, axis=1)
            used = np.arange(items.shape[1]) < lengths[:, None]
            chunk = pl.DataFrame({
                "session_id": np.repeat(np.arange(n_sessions + 1, n_sessions + len(lengths) + 1), lengths),
                "item_id": items[used] + 1,
                "timestamp": times[used],
            })
            chunk.write_csv(handle, include_header=written == 0)
            written += chunk.height
            n_sessions += len(lengths)
    return {"items": n_items, "sessions": n_sessions, "interactions": written}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the bundled sample dataset.")
    parser.add_argument("out_dir", nargs="?", default="data/sample/raw", type=Path)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    counts = generate_sample(args.out_dir, seed=args.seed)
    print(", ".join(f"{n} {what}" for what, n in counts.items()) + f" written to {args.out_dir}")


if __name__ == "__main__":
    main()
