"""Files that decode to far more than they weigh, and a way to measure what reading one costs: each is read in
a fresh Python (peak_growth) so that its peak memory is its own."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conftest import ROOT

MAX_GROWTH_MB = 1024
HEADROOM_BYTES = 4 * 2**30
"""The child may not map more than this beyond what it has after its imports, so a bomb that is not refused
fails the test with MemoryError instead of taking the machine's memory."""
BIG_STRING_CHARS = 100_000

_PROBE = """
import json, resource, sys
sys.path.insert(0, {root!r})
{setup}
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + {headroom}, resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    {call}
    message = ""
except ValueError as error:
    message = str(error)
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps([grew / 1024, message]))
"""


def peak_growth(setup: str, call: str) -> tuple[float, str]:
    """(MB the peak resident memory of a fresh Python grew by during ``call``, the ValueError it raised or "")."""
    code = _PROBE.format(root=str(ROOT), setup=textwrap.dedent(setup), call=call, headroom=HEADROOM_BYTES)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    grew, message = json.loads(done.stdout.strip().splitlines()[-1])
    return grew, message


def read_growth(path, columns: dict, limits: dict) -> tuple[float, str]:
    return peak_growth("from intake import Limits, read_columns",
                       f"read_columns({str(path)!r}, {columns!r}, limits=Limits(**{limits!r}))")


def dictionary_bomb(path, rows: int, label: bool = False):
    """``rows`` rows of one 100 kB string, dictionary-encoded and zstd-compressed: under 1 kB on disk,
    rows * 100 kB of text once decoded. No Arrow schema is stored, so a reader sees a plain text column
    (as from any other writer) rather than a dictionary it could keep."""
    indices = pa.array(np.zeros(rows, np.int32))
    columns = {"text": pa.DictionaryArray.from_arrays(indices, pa.array(["x" * BIG_STRING_CHARS]))}
    if label:
        columns["label"] = pa.array(np.zeros(rows, np.int64))
    pq.write_table(pa.table(columns), path, compression="zstd", store_schema=False)
    return path


def one_cell_bomb(path, chars: int):
    """One plain-encoded cell of ``chars`` characters, zstd-compressed to a few kB."""
    data = pa.py_buffer(b"x" * chars)
    cell = pa.StringArray.from_buffers(1, pa.py_buffer(np.array([0, chars], np.int32).tobytes()), data)
    pq.write_table(pa.table({"text": cell}), path, compression="zstd", use_dictionary=False,
                   write_statistics=False)
    return path


def new_key_per_line(path, lines: int = 60_000):
    """Every line a new key: about 2 MB, a lines x lines table if every key became a column."""
    path.write_text("".join(f'{{"text": "hi", "k{i}": 1}}\n' for i in range(lines)), encoding="utf-8")
    return path


def many_columns_csv(path, columns: int = 3_000, rows: int = 2_000):
    header = ",".join(f"c{i}" for i in range(columns - 1)) + ",text\n"
    path.write_text(header + ("1," * (columns - 1) + "hello\n") * rows, encoding="utf-8")
    return path
