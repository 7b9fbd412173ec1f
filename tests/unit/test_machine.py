"""Precision and threads follow the machine: the decision with the machine's capabilities faked both ways."""

import pytest
from helpers import TOKENIZER_DIR

from ft import machine
from ft.config import TrainConfig
from ft.machine import BF16_EMULATED_NOTE, Capabilities
from runner.commands import child_environment

AVX2_ONLY = Capabilities("AMD EPYC (AVX2)", frozenset({"avx2", "fma", "sse4_2"}))
AMX_FLAGS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
SAPPHIRE_RAPIDS = Capabilities("Intel Xeon", AMX_FLAGS, bf16_speedup=2.1)
VIRTUAL_XEON = Capabilities("Intel Xeon", frozenset({"avx2", "avx512f", "avx512_bf16"}), bf16_speedup=0.6)
BF16_GPU = Capabilities("any", frozenset({"avx2"}), cuda=True, cuda_bf16=True)
OLD_GPU = Capabilities("any", frozenset({"avx512_bf16"}), cuda=True, cuda_bf16=False, bf16_speedup=2.0)


@pytest.mark.parametrize(
    ("capabilities", "bf16"),
    [(AVX2_ONLY, False), (SAPPHIRE_RAPIDS, True), (VIRTUAL_XEON, False), (BF16_GPU, True), (OLD_GPU, False)],
)
def test_auto_runs_bf16_only_where_it_is_native_and_measured_faster(capabilities, bf16):
    assert machine.uses_bf16("auto", capabilities) is bf16
    assert machine.scoring_bf16(capabilities) is bf16
    assert machine.uses_bf16("fp32", capabilities) is False
    assert machine.uses_bf16("bf16", capabilities) is True, "an explicit bf16 is obeyed"


def test_an_explicit_bf16_says_its_cost_where_it_does_not_pay():
    assert machine.precision_note("bf16", AVX2_ONLY) == BF16_EMULATED_NOTE
    assert "8x slower" in BF16_EMULATED_NOTE
    assert "0.60x the speed of fp32" in machine.precision_note("bf16", VIRTUAL_XEON)
    assert machine.precision_note("bf16", SAPPHIRE_RAPIDS) is None
    assert machine.precision_note("auto", AVX2_ONLY) is None
    assert machine.precision_note("fp32", AVX2_ONLY) is None


def test_a_process_capped_below_bf16_kernels_has_no_native_bf16():
    capped = Capabilities("Intel Xeon", AMX_FLAGS, isa_cap="AVX2", bf16_speedup=2.1)
    assert machine.uses_bf16("auto", capped) is False
    assert machine.precision_note("bf16", capped) == BF16_EMULATED_NOTE
    assert machine.uses_bf16("auto", Capabilities("Xeon", AMX_FLAGS, isa_cap="AVX512_CORE_AMX", bf16_speedup=2.1))


def test_the_probe_runs_once_per_cpu_and_is_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    timed = []

    def probe():
        timed.append(1)
        return 2.0

    monkeypatch.setattr(machine, "_probe_speedup", probe)
    assert machine._bf16_speedup(SAPPHIRE_RAPIDS) == 2.0
    assert machine._bf16_speedup(SAPPHIRE_RAPIDS) == 2.0
    assert len(timed) == 1, "measured once, then read from its file"
    machine._bf16_speedup(VIRTUAL_XEON)
    assert len(timed) == 2, "another CPU is measured on its own"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "another-hf-home"))
    machine._bf16_speedup(SAPPHIRE_RAPIDS)
    assert len(timed) == 2, "every process of the machine reads the same result, whatever its HF_HOME"


def test_the_probe_compares_the_two_precisions_in_turns():
    assert 0.05 < machine._probe_speedup(rounds=3) < 20


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 fma\n"
    )
    assert machine._cpuinfo(cpuinfo) == ("AMD EPYC 7B13", frozenset({"fpu", "avx2", "fma"}))
    assert machine._cpuinfo(tmp_path / "missing")[1] == frozenset()


def test_scoring_chooses_for_the_machine_whatever_the_run_trained_with(monkeypatch, tokenizer):
    from ft import models
    from ft.detector import detector_for

    model = models.load_base("tiny", tokenizer, "none")
    trained_in_bf16 = TrainConfig(model="tiny", tokenizer=str(TOKENIZER_DIR), precision="bf16")
    monkeypatch.setattr(machine, "measured", lambda: AVX2_ONLY)
    assert detector_for(trained_in_bf16, model, tokenizer).bf16 is False
    monkeypatch.setattr(machine, "measured", lambda: SAPPHIRE_RAPIDS)
    assert detector_for(TrainConfig(model="tiny", precision="fp32"), model, tokenizer).bf16 is True


def test_runs_and_the_app_share_the_cores_but_a_users_own_setting_wins(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert child_environment()["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert child_environment()["OMP_WAIT_POLICY"] == "ACTIVE"
    assert machine.thread_environment({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"
