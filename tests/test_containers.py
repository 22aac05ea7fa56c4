"""docker/Dockerfile and singularity/tfastro.def describe the same image.

No container engine runs here, so both recipes are read with real parsers (dockerfile-parse,
spython) and compared with each other and with setup.cfg.
"""
import configparser
import json
import os
import re
import string

import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from spython.main.parse.parsers import SingularityParser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(REPO, "docker", "Dockerfile")
DEFFILE = os.path.join(REPO, "singularity", "tfastro.def")
ENTRY = ["bash", "run.sh"]


def setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    return cfg


@pytest.fixture(scope="module")
def docker():
    return DockerfileParser(DOCKERFILE)


@pytest.fixture(scope="module")
def sif():
    recipes = SingularityParser(DEFFILE).recipe
    assert len(recipes) == 1, f"{DEFFILE}: expected one stage, got {list(recipes)}"
    return next(iter(recipes.values()))


def instructions(docker, name):
    return [i["value"] for i in docker.structure if i["instruction"] == name]


def pip_installs(commands):
    """The `pip install` commands among shell lines (also split at &&)."""
    parts = [p.strip() for c in commands for p in c.split("&&")]
    return [p for p in parts if re.search(r"\bpip install\b", p)]


def pinned_version(command, where):
    found = re.findall(r"""["']?tfastro==([^"'\s]+)""", command)
    assert len(found) == 1, f"{where}: no single tfastro==VERSION in {command!r}"
    return found[0]


def docker_installs(docker):
    runs = [string.Template(r).safe_substitute(docker.args) for r in instructions(docker, "RUN")]
    installs = pip_installs(runs)
    assert len(installs) == 1, f"{DOCKERFILE}: expected one pip install, got {installs}"
    return installs[0]


def sif_installs(sif):
    installs = pip_installs(sif.install)
    assert len(installs) == 1, f"{DEFFILE}: expected one pip install in %post, got {installs}"
    return installs[0]


def sif_labels(sif):
    return dict(label.split(None, 1) for label in sif.labels)


def test_same_pinned_tensorflow_gpu_base(docker, sif):
    assert docker.baseimage == sif.fromHeader
    with open(DEFFILE) as f:
        assert f.readline().split() == ["Bootstrap:", "docker"]
    repo, _, tag = docker.baseimage.partition(":")
    assert repo == "tensorflow/tensorflow"
    match = re.fullmatch(r"(\d+\.\d+\.\d+)-gpu", tag)
    assert match, f"base image tag {tag!r} is not an exact TensorFlow GPU release"
    gpu_extra = Requirement(setup_cfg()["options.extras_require"]["gpu"].strip())
    assert gpu_extra.name == "tensorflow"
    assert gpu_extra.specifier.contains(match.group(1)), (tag, str(gpu_extra.specifier))


def test_both_install_setup_cfg_version_without_a_second_tensorflow(docker, sif):
    version = setup_cfg()["metadata"]["version"]
    docker_pip, sif_pip = docker_installs(docker), sif_installs(sif)
    assert pinned_version(docker_pip, DOCKERFILE) == version
    assert pinned_version(sif_pip, DEFFILE) == version
    assert docker.labels["org.opencontainers.image.version"] == version
    assert sif_labels(sif)["Version"] == version
    for command in (docker_pip, sif_pip):
        # TensorFlow is the base image's: no [cpu] or [gpu] extra and no tensorflow wheel; the
        # compiled mass assignment comes with the [fast] extra.
        assert re.findall(r"\[([^]]*)\]", command) == ["fast"], command
        assert "tensorflow" not in command, command
        assert "--no-cache-dir" in command, command


def test_same_entry_point_in_the_same_directory(docker, sif):
    assert os.path.isfile(os.path.join(REPO, ENTRY[-1]))
    assert json.loads(docker.cmd) == ENTRY
    assert not instructions(docker, "ENTRYPOINT")
    workdir = instructions(docker, "WORKDIR")
    assert len(workdir) == 1
    runscript = sif.cmd
    assert f"cd {workdir[0]}" in runscript, runscript
    assert f"exec {' '.join(ENTRY)}" in runscript, runscript
    assert 'exec "$@"' in runscript, f"{DEFFILE}: %runscript does not pass its arguments on"


def test_both_ship_the_same_sources(docker, sif):
    """The .dockerignore allow-list and %files name the same files: what `pip install`
    needs (setup.cfg, pyproject.toml, the long_description file, the package) and run.py/run.sh."""
    needed = {"setup.cfg", "pyproject.toml", "tfastro", "run.py", "run.sh",
              setup_cfg()["metadata"]["long_description"].removeprefix("file:").strip()}
    with open(os.path.join(REPO, ".dockerignore")) as f:
        rules = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"
    docker_sources = {r[1:] for r in rules if r.startswith("!")}
    sif_sources = {line.split()[0] for line in sif.files}
    assert docker_sources == sif_sources == needed
    assert all(os.path.exists(os.path.join(REPO, p)) for p in needed)
    assert instructions(docker, "COPY")[0].split()[0] == "."


def test_singularity_has_every_section(sif):
    labels = sif_labels(sif)
    assert labels["Name"] == "tfastro"
    assert sif.files, "%files"
    assert sif.install, "%post"
    assert sif.environ, "%environment"
    assert sif.cmd, "%runscript"
    assert sif.test, "%test"
