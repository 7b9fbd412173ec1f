"""python -m curation.freeze: import datasets and freeze a mixed snapshot from the command line."""

import json

import pandas as pd
from helpers import pool_slice

from curation import freeze
from ft import data


def test_a_folder_of_sources_is_imported_once_and_frozen_with_the_mix(tmp_path, capsys):
    pool = pool_slice(tmp_path / "pool", {"clinc-oos": 60, "verazuo-itw-jailbreaks": 40, "xquad": 40})
    mix = tmp_path / "mix.yaml"
    mix.write_text("test_share: 0.25\nweights:\n  xquad: 0\n")
    argv = ["--data-dir", str(tmp_path / "studio"), "--import", str(pool), "--mix", str(mix)]
    assert freeze.main(argv) == 0
    folder = capsys.readouterr().out.strip()
    manifest = json.loads((tmp_path / "studio" / "snapshots" / folder.rsplit("/", 1)[1] / "manifest.json").read_text())
    assert manifest["mix"]["test_share"] == 0.25 and manifest["mix"]["weights"] == {"xquad": 0.0}
    train = pd.read_parquet(f"{folder}/train.parquet")
    assert not train["source"].str.startswith("xquad").any(), "weight 0 keeps no train row"
    assert set(pd.read_parquet(f"{folder}/test.parquet")["source"].str.split("/").str[0]) >= {"clinc-oos", "xquad"}
    assert set(data.load_training_data(folder, validation_size=8)["train"].columns) == {"text", "label", "source"}

    assert freeze.main([*argv, "--weights", "clinc-oos=2"]) == 0
    assert "0 added" in capsys.readouterr().err, "importing again adds nothing"


def test_a_mix_naming_an_unknown_source_writes_no_snapshot(tmp_path, capsys):
    pool = pool_slice(tmp_path / "pool", {"clinc-oos": 20})
    argv = ["--data-dir", str(tmp_path / "studio"), "--import", str(pool), "--weights", "no-such-source=2"]
    assert freeze.main(argv) == 2
    assert "no source named 'no-such-source'" in capsys.readouterr().err
    assert not list((tmp_path / "studio" / "snapshots").glob("*/manifest.json"))


def test_a_run_on_a_snapshot_says_its_mix_where_it_shows_its_data(tmp_path, capsys):
    from curation.snapshots import data_description

    pool = pool_slice(tmp_path / "pool", {"clinc-oos": 30, "verazuo-itw-jailbreaks": 30})
    argv = ["--data-dir", str(tmp_path / "studio"), "--import", str(pool), "--weights", "clinc-oos=0.5"]
    assert freeze.main([*argv, "--mix", str(tmp_path / "none.yaml")]) == 2, "a mix file that is not there"
    assert freeze.main(argv) == 0
    line = data_description(capsys.readouterr().out.strip())
    assert line.startswith("data: snapshot ") and "weights clinc-oos x0.5" in line and "2 sources" in line
    assert data_description(str(pool)) is None
