"""What this machine does well: the precision a model runs in, and how its processes share the cores.

Precision. bf16 autocast pays only where bf16 is native: a CUDA GPU with bf16, or a CPU with the
AVX512-BF16 or AMX instructions. On an AVX2-only CPU torch emulates it, and a SmolLM2 forward pass ran
8.1x slower than in fp32 (issue 19: 21.3 s against 2.63 s on 16 x 96 tokens). Native is not enough
either: on a virtual Xeon that shows AVX512-BF16 but no AMX, the same pass ran 1.6x *slower* in bf16
(3.34 s against 2.12 s). So on a CPU whose flags say native, bf16 is timed against fp32 once (a small
MLP block, under a second, the two timed in turns) and the answer is kept in the user's cache folder per CPU
and torch version, so every process of the machine makes the same choice. ``precision:
auto`` takes bf16 only where it is native and measured faster; ``bf16`` is obeyed but says what it
costs; scoring (Detect, ``ft.evaluate``, ``serving.score``, audits, Compare) always chooses for the
machine it runs on, whatever a run trained with: a run trained on one machine is scored on another.

Threads. The app's web process and the run it starts share two cores. GNU OpenMP's worker threads
spin while they wait for work (libgomp's default: 300,000 spins, a few ms); two processes that spin
against each other each lose far more than half (bench/share_bench.py: a run beside Detect kept 26% of
its speed, Detect's p50 grew 5.9x). ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads sleep, so the other
process gets the core; ``GOMP_SPINCOUNT=10000`` keeps a short spin (~0.1 ms) so the hundreds of small
back-to-back ops of a one-prompt pass do not each wait for sleeping threads to wake. Both must be in the
environment before torch is imported (OpenMP reads them once): ``app.py`` applies ``thread_environment``
at its first line, and every run the app starts inherits it. The app's model work also runs in one
thread (serving.service), since libgomp throttles spinning to nothing once a process holds more OpenMP
threads than cores.

This module imports no torch at import time: the runner (which must not load torch) reads it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from ft.config import cuda_device_count

NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""x86 flags (as in /proc/cpuinfo) of instructions that compute in bf16; aarch64 calls its own "bf16"."""
BF16_EMULATED_NOTE = (
    "bf16 on this CPU is emulated (no AVX512-BF16 or AMX): about 8x slower than fp32. precision: auto runs fp32 here."
)
MIN_BF16_SPEEDUP = 1.1
"""bf16 autocast is used on a CPU only when the probe finds it at least this much faster than fp32."""
ISAS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"})
"""oneDNN ISA caps (``ONEDNN_MAX_CPU_ISA``) below its bf16 kernels: a capped process has no native bf16 whatever
the CPU's flags say (also how an AVX2-only CPU is stood in for on a newer one, with ``ATEN_CPU_CAPABILITY=avx2``)."""
THREAD_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}
"""OpenMP settings under which the app and its runs share the cores (see the module docstring)."""


@dataclass(frozen=True)
class Capabilities:
    """The facts the precision decision reads; tests build their own to fake a machine."""

    cpu_model: str
    cpu_flags: frozenset[str]
    cuda: bool = False
    cuda_bf16: bool = False
    isa_cap: str = ""
    """``ONEDNN_MAX_CPU_ISA`` when set: the instructions torch's CPU kernels may use."""
    bf16_speedup: float | None = None
    """fp32 time / bf16 autocast time of the probe on this CPU; None when not measured."""

    @property
    def cpu_native_bf16(self) -> bool:
        if self.isa_cap.upper() in ISAS_WITHOUT_BF16:
            return False
        arm_bf16 = platform.machine() in ("aarch64", "arm64") and "bf16" in self.cpu_flags
        return bool(self.cpu_flags & NATIVE_BF16_CPU_FLAGS) or arm_bf16

    @property
    def bf16_pays(self) -> bool:
        """Whether bf16 autocast is the faster choice where models run: a bf16 GPU, or a CPU whose bf16 is native
        and measured faster than fp32."""
        if self.cuda:
            return self.cuda_bf16
        return self.cpu_native_bf16 and (self.bf16_speedup or 0.0) >= MIN_BF16_SPEEDUP

    def describe(self) -> str:
        """One line: the CPU (or GPU), whether its bf16 is native, and what the probe measured."""
        if self.cuda:
            return f"CUDA GPU: {'bf16' if self.cuda_bf16 else 'no bf16'}"
        where = (self.cpu_model or "CPU") + (f" (capped at {self.isa_cap})" if self.isa_cap else "")
        if not self.cpu_native_bf16:
            return f"{where}: no native bf16 (AVX2-class: bf16 is emulated), so fp32"
        if self.bf16_speedup is None:
            return f"{where}: native bf16 (AVX512-BF16/AMX); auto times it against fp32 once, on first use"
        choice = "bf16" if self.bf16_pays else "fp32"
        return f"{where}: native bf16, measured {self.bf16_speedup:.2f}x the speed of fp32 here, so {choice}"


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, frozenset[str]]:
    """The CPU's model name and flags, from /proc/cpuinfo (empty where there is none, as on macOS)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return platform.processor(), frozenset()
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def _cuda() -> tuple[bool, bool]:
    """Whether a CUDA device is visible (``ft.config.cuda_device_count``, as the Trainer sees it), and has bf16."""
    if not cuda_device_count():
        return False, False
    import torch

    return True, bool(torch.cuda.is_bf16_supported())


@functools.lru_cache(maxsize=1)
def capabilities() -> Capabilities:
    """This machine's capabilities as its CPU flags and CUDA tell them (cheap: no probe), read once per process."""
    model, flags = _cpuinfo()
    cuda, cuda_bf16 = _cuda()
    return Capabilities(model, flags, cuda, cuda_bf16, os.environ.get("ONEDNN_MAX_CPU_ISA", ""))


def _probe_speedup(rounds: int = 7) -> float:
    """fp32 time / bf16 autocast time of an MLP block of SmolLM2's width on 1,536 tokens, in inference.

    The two are timed in turns and their medians compared, so load from other processes slows both alike
    (timed one after the other, a busy moment once made bf16 look 1.19x faster on a CPU where it runs at 0.6x)."""
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(0)
        block = torch.nn.Sequential(torch.nn.Linear(576, 1536), torch.nn.SiLU(), torch.nn.Linear(1536, 576))
        tokens = torch.randn(1536, 576)
    times: dict[bool, list[float]] = {False: [], True: []}
    with torch.inference_mode():
        for _ in range(rounds + 1):
            for bf16 in (False, True):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    started = time.perf_counter()
                    block(tokens)
                    times[bf16].append(time.perf_counter() - started)
    fp32, bf16 = (sorted(times[side][1:])[rounds // 2] for side in (False, True))
    return fp32 / bf16


def _probe_file(machine: Capabilities) -> Path:
    """Where this CPU's probe result is kept: the user's cache folder (``XDG_CACHE_HOME``), shared by every process
    of the machine, so the app, its runs and the command line all make the same choice. Named by torch's installed
    version, read without importing torch: a page that shows the machine's precision loads no model library."""
    key = json.dumps(
        [machine.cpu_model, sorted(machine.cpu_flags), machine.isa_cap, importlib.metadata.version("torch")]
    )
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "injection-studio" / f"bf16-probe-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _bf16_speedup(machine: Capabilities) -> float:
    """fp32 / bf16 time of the probe on this CPU: read from its file, or measured once and written there."""
    path = _probe_file(machine)
    try:
        return float(json.loads(path.read_text())["speedup"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    speedup = _probe_speedup()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"speedup": speedup, "cpu": machine.cpu_model, "measured": time.time()}))
    tmp.replace(path)
    return speedup


@functools.lru_cache(maxsize=1)
def measured() -> Capabilities:
    """This machine's capabilities with bf16 timed against fp32 where the CPU's flags say it is native."""
    machine = capabilities()
    if machine.cuda or not machine.cpu_native_bf16:
        return machine
    return dataclasses.replace(machine, bf16_speedup=_bf16_speedup(machine))


def uses_bf16(precision: str = "auto", machine: Capabilities | None = None) -> bool:
    """Whether training under ``precision`` runs in bf16 autocast: "bf16" always, "auto" where it pays."""
    if precision == "bf16":
        return True
    return precision == "auto" and (machine or measured()).bf16_pays


def scoring_bf16(machine: Capabilities | None = None) -> bool:
    """Whether scoring runs in bf16 autocast on this machine: where it pays, whatever a run trained with."""
    return uses_bf16("auto", machine)


def precision_note(precision: str, machine: Capabilities | None = None) -> str | None:
    """What ``precision`` costs here, when it is a bad choice for this machine (an explicit bf16 where it is
    emulated or measured slower than fp32); None otherwise."""
    if precision != "bf16":
        return None
    machine = machine or measured()
    if machine.bf16_pays:
        return None
    if not machine.cuda and not machine.cpu_native_bf16:
        return BF16_EMULATED_NOTE
    slower = f"measured {machine.bf16_speedup:.2f}x the speed of fp32" if machine.bf16_speedup else "not faster"
    return f"bf16 on this machine is {slower}. precision: auto runs fp32 here."


def thread_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment with the sharing thread settings added where the user set none of their own."""
    environ = dict(os.environ if environ is None else environ)
    return {**THREAD_ENVIRONMENT, **environ}
