"""Writes a SYNTHETIC dataset (made-up figures, for benchmarks only; never seeded by default).

    python bench/synthetic.py --metrics 10000 --sources 50 --out /tmp/synthetic
    python bench/synthetic.py --metrics 10000 --sources 50 --out /tmp/synthetic-2 --revision 2

Each source is a generated text of sentences, each stating one made-up figure the way an
article writes it ("$45,000", "47%", "3.5x", "$150 billion", ranges such as "25-30%" and
"12-18 months" with an en dash), and a dataset file in the format of seed/data/ with the text
file beside it (where `cdmo-metrics import` and bench/run.py look for it). Every title, name
and sentence says SYNTHETIC.

The figures, texts and evidence depend only on --metrics, --sources and --seed. `--revision N`
(N > 1) writes the same dataset with every metric's name and description changed, so that
importing revision 1 and then revision 2 makes one create and one update per metric.
"""

import argparse
import json
import random
from pathlib import Path
from typing import Any

CATEGORIES = ["market", "technology", "regulatory", "pricing", "mna"]
SUBJECTS = ["CAR-T", "TIL", "mRNA vaccine", "cell therapy", "gene therapy", "outsourcing",
            "capacity", "automation", "pricing", "regulation"]  # fmt: skip
DASH = "\u2013"  # ranges are written with an en dash, as the article does ("25-30%")
MAX_TEXT = 100_000  # the longest source text a dataset may have (api/dataset.py)
DURATIONS = {"hours": (4, 96), "days": (2, 60), "months": (2, 36), "years": (1, 15)}


def number(value: float) -> str:
    """A figure as articles write it: thousands separators, no trailing `.0`."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,}"


def _qualifier(rng: random.Random) -> tuple[str, str]:
    """(qualifier, the words that say it before a figure)."""
    return rng.choice([("eq", ""), ("eq", ""), ("eq", ""), ("gt", "more than "),
                       ("approx", "about ")])  # fmt: skip


def _figure(
    rng: random.Random, kind: int, subject: str, year: int, forecast: bool
) -> dict[str, Any]:
    """One made-up figure of measure `kind` (0-6) for `year`: its fields and the sentence
    stating it, without the "SYNTHETIC figure N:" label."""
    ranged = rng.random() < 0.25
    qualifier, words = _qualifier(rng)
    when = f"by {year}" if forecast else f"in {year}"
    direction, base_year = None, None
    if kind == 0:  # a share, "47%" or "25-30%"
        measure, unit = "share", "percent"
        low = rng.randint(5, 80)
        high = low + rng.randint(2, 15) if ranged else low
        text = f"{low}{DASH}{high}%" if ranged else f"{low}%"
        verb = "will outsource" if forecast else "outsourced"
        clause = f"{words}{text} of made-up {subject} developers {verb} their production {when}"
    elif kind == 1:  # a growth rate, "11.2%" a year from a base year
        measure, unit = "growth_rate", "percent"
        low = high = round(rng.uniform(1.5, 30.0), 1)
        ranged = False
        base_year = year - rng.randint(2, 6)
        verb = "is projected to grow" if forecast else "grew"
        clause = (
            f"the made-up {subject} market {verb} at a compound annual rate of {words}"
            f"{number(low)}% from {base_year} to {year}"
        )
    elif kind == 2:  # a change, "reduced by 25%"
        measure, unit = "change", "percent"
        direction = rng.choice(["increase", "decrease"])
        low = rng.randint(3, 60)
        high = low + rng.randint(2, 10) if ranged else low
        text = f"{low}{DASH}{high}%" if ranged else f"{low}%"
        verb = {"increase": "rise", "decrease": "fall"}[direction]
        verb = f"are expected to {verb}" if forecast else {"rise": "rose", "fall": "fell"}[verb]
        clause = f"made-up {subject} batch yields {verb} by {words}{text} {when}"
    elif kind == 3:  # a multiple, "3.5x"
        measure, unit = "multiple", "ratio"
        low = high = round(rng.uniform(1.1, 9.9), 1)
        ranged = False
        verb = "is expected to grow" if forecast else "grew"
        clause = f"made-up {subject} throughput {verb} {words}{number(low)}x {when}"
    elif kind == 4:  # a duration, "14 days" or "12-18 months"
        measure = "duration"
        unit = rng.choice(sorted(DURATIONS))
        least, most = DURATIONS[unit]
        low = rng.randint(least, most)
        high = low + rng.randint(1, most) if ranged else low
        text = f"{low}{DASH}{high} {unit}" if ranged else f"{low} {unit}"
        verb = "are expected to be" if forecast else "were"
        clause = f"made-up {subject} lead times {verb} {words}{text} {when}"
    elif kind == 5:  # a count, "4,321 sites"
        measure, unit = "count", "count"
        low = rng.randint(2, 25_000)
        high = low + rng.randint(10, 5_000) if ranged else low
        text = f"{number(low)}{DASH}{number(high)}" if ranged else number(low)
        verb = "is expected to count" if forecast else "counted"
        clause = f"the made-up {subject} network {verb} {words}{text} sites {when}"
    else:  # a level in US dollars, "$45,000", "$45,000-$65,000", "$320 million", "$150 billion"
        measure, unit = "level", "USD"
        scale = rng.choice(["", "", "million", "billion"])
        if scale:
            ranged = False
            amount = rng.randint(2, 900)
            low = high = amount * (1_000_000 if scale == "million" else 1_000_000_000)
            text = f"${amount} {scale}"
        else:
            low = rng.randint(2, 900) * 500
            high = low + rng.randint(1, 200) * 500 if ranged else low
            text = f"${number(low)}{DASH}${number(high)}" if ranged else f"${number(low)}"
        verb = "is expected to be worth" if forecast else "was worth"
        clause = f"a made-up {subject} contract {verb} {words}{text} {when}"
    return {
        "fields": {
            "value": None if ranged else low,
            "value_low": low,
            "value_high": high,
            "qualifier": qualifier,
            "unit": unit,
            "measure": measure,
            "direction": direction,
            "base_year": base_year,
        },
        "clause": clause,
    }


def write(out: Path, metrics: int, sources: int, seed: int = 7, revision: int = 1) -> list[Path]:
    """Write `sources` text and dataset files holding `metrics` metrics in all; return the
    dataset files. Revision N > 1 changes every metric's name and description, nothing else."""
    if sources < 1 or metrics < 0:
        raise ValueError("need at least one source and no negative number of metrics")
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    per_source, extra = divmod(metrics, sources)
    suffix = f" (revision {revision})" if revision > 1 else ""
    for s in range(sources):
        source_id = f"synthetic-source-{s:03d}"
        sentences, records = [], []
        offset = 0
        for m in range(per_source + (1 if s < extra else 0)):
            subject = rng.choice(SUBJECTS)
            year = 2020 + m % 10
            forecast = m % 3 == 0
            figure = _figure(rng, m % 7, subject, year, forecast)
            sentence = f"SYNTHETIC figure {s}-{m}: {figure['clause']}."
            measure = figure["fields"]["measure"].replace("_", " ")
            description = (
                f"A made-up {measure} figure generated for benchmarks; not real data.{suffix}"
            )
            records.append(
                {
                    "id": f"synthetic-{s:03d}-{m:05d}",
                    "category": CATEGORIES[m % len(CATEGORIES)],
                    "name": f"SYNTHETIC {subject} indicator {s}-{m}{suffix}",
                    "description": description,
                    **figure["fields"],
                    "year": year,
                    "forecast": forecast,
                    "geography": "global" if m % 4 == 0 else None,
                    "subjects": [subject, "synthetic"],
                    "cited_as": None,
                    "baseline_id": None,
                    "evidence": {"quote": sentence, "start": offset, "end": offset + len(sentence)},
                }
            )
            sentences.append(sentence)
            offset += len(sentence) + 1
        text = "\n".join(sentences) or f"SYNTHETIC benchmark source {s} states no figure."
        if len(text) > MAX_TEXT:
            raise ValueError(
                f"source {source_id} would be {len(text):,} characters, over the {MAX_TEXT:,} a "
                f"source text may have: use more sources (about 500 metrics each at most)"
            )
        text_name = f"{source_id}.txt"
        (out / text_name).write_text(text, encoding="utf-8")
        dataset = {
            "source": {
                "id": source_id,
                "title": f"SYNTHETIC benchmark source {s}",
                "publisher": "bench/synthetic.py",
                "author": None,
                "published_on": "2026-01-01",
                "kind": "dataset",
                "url": None,
                "text_file": text_name,
            },
            "metrics": records,
        }
        # JSON, the machine-made form of the dataset format: PyYAML builds a 100,000-metric
        # YAML file's objects in Python at about 1 s per 1,000 metrics.
        path = out / f"{source_id}.json"
        path.write_text(json.dumps(dataset, ensure_ascii=False), encoding="utf-8")
        files.append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--metrics", type=int, default=10_000)
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7, help="random seed of the figures")
    parser.add_argument(
        "--revision",
        type=int,
        default=1,
        help="N > 1: the same figures, every metric's name and description changed",
    )
    args = parser.parse_args()
    files = write(args.out, args.metrics, args.sources, seed=args.seed, revision=args.revision)
    print(f"wrote {len(files)} SYNTHETIC dataset files to {args.out}")


if __name__ == "__main__":
    main()
