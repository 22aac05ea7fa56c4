"""README.md's Python examples run as written (each in a fresh interpreter, in a scratch folder,
in under three minutes: they are meant to take well under one on 2 idle cores), and every PNG an
example names is written and shows something."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib import image as mpimg

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.M | re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("case, heading", [("multifield", "Multifield emulator"),
                                           ("dm2gal", "dm2gal"),
                                           ("turbulence", "Cosmic-ray transport"),
                                           ("prestellar", "Prestellar cores")])
def test_each_case_section_has_a_python_example_writing_a_figure(case, heading):
    sections = [s for s in README.read_text().split("\n## ") if s.startswith(heading)]
    assert len(sections) == 1, f"no single section '## {heading}'"
    blocks = re.findall(r"^```python\n(.*?)^```", sections[0], flags=re.M | re.S)
    assert any(f"from tfastro.{case}" in b and ".png" in b for b in blocks), heading


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(README.parent), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, env=env, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in re.findall(r"[\"']([\w.-]+\.png)[\"']", code):
        picture = mpimg.imread(tmp_path / name)
        assert picture[..., :3].std() > 0.01, f"{name} is blank"
