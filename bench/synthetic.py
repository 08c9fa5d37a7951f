"""Writes a SYNTHETIC dataset (made-up figures, for benchmarks only; never seeded by default).

    python bench/synthetic.py --metrics 10000 --sources 50 --out /tmp/synthetic

Each source is a generated text of numbered sentences, each stating one made-up figure, and a
dataset file in the format of seed/data/. Every title, name and sentence says SYNTHETIC.
"""

import argparse
import random
from pathlib import Path

import yaml

CATEGORIES = ["market", "technology", "regulatory", "pricing", "mna"]
SUBJECTS = ["CAR-T", "TIL", "mRNA vaccine", "cell therapy", "gene therapy", "outsourcing",
            "capacity", "automation", "pricing", "regulation"]  # fmt: skip


def write(out: Path, metrics: int, sources: int, seed: int = 7) -> list[Path]:
    """Write `sources` text and dataset files holding `metrics` metrics in all; return them."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    per_source = metrics // sources
    for s in range(sources):
        source_id = f"synthetic-source-{s:03d}"
        sentences, records = [], []
        offset = 0
        for m in range(per_source):
            value = rng.randint(1, 95)
            subject = rng.choice(SUBJECTS)
            sentence = (
                f"SYNTHETIC figure {s}-{m}: the made-up {subject} indicator stands at {value}% "
                f"in {2020 + m % 10}."
            )
            records.append(
                {
                    "id": f"synthetic-{s:03d}-{m:05d}",
                    "category": CATEGORIES[m % len(CATEGORIES)],
                    "name": f"SYNTHETIC {subject} indicator {s}-{m}",
                    "description": "A made-up figure generated for benchmarks; not real data.",
                    "value": value,
                    "value_low": value,
                    "value_high": value,
                    "qualifier": "eq",
                    "unit": "percent",
                    "measure": "share",
                    "direction": None,
                    "year": 2020 + m % 10,
                    "forecast": m % 3 == 0,
                    "base_year": None,
                    "geography": "global" if m % 4 == 0 else None,
                    "subjects": [subject, "synthetic"],
                    "cited_as": None,
                    "baseline_id": None,
                    "evidence": {"quote": sentence, "start": offset, "end": offset + len(sentence)},
                }
            )
            sentences.append(sentence)
            offset += len(sentence) + 1
        text_name = f"{source_id}.txt"
        (out / text_name).write_text("\n".join(sentences), encoding="utf-8")
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
        path = out / f"{source_id}.yaml"
        path.write_text(yaml.safe_dump(dataset, sort_keys=False), encoding="utf-8")
        files.append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", type=int, default=10_000)
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    files = write(args.out, args.metrics, args.sources)
    print(f"wrote {len(files)} SYNTHETIC dataset files to {args.out}")


if __name__ == "__main__":
    main()
