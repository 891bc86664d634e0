"""What the image is made of, checked without building it (the build and the running container are checked by
`make image-test`, tests/deploy/test_deploy_image_e2e.py): Hugging Face Docker Space conventions in the
Dockerfile, the build context, and how the host's pip settings reach the build without entering the image."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from deploy_helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "deploy"))
import pip_build_args  # noqa: E402

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def _docker_space_front_matter() -> dict[str, str]:
    """The front matter shown in the README's Docker Space section (the block a Space's README starts with)."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("### Docker Space"):]
    block = re.search(r"```yaml\n\s*---\n(.*?)\n\s*---\n\s*```", section, re.S).group(1)
    return dict(line.strip().split(": ", 1) for line in block.splitlines() if ": " in line)


def test_space_conventions_in_the_dockerfile():
    front = _docker_space_front_matter()
    assert front["sdk"] == "docker"
    port = front["app_port"]
    assert re.search(rf"^\s+PORT={port}$", DOCKERFILE, re.M) and f"EXPOSE {port}" in DOCKERFILE
    assert "useradd --create-home --uid 1000" in DOCKERFILE and "\nUSER user\n" in DOCKERFILE
    assert "HOME=/home/user" in DOCKERFILE and "chown -R user:user /data /home/user" in DOCKERFILE
    assert "HF_HOME=/data/.huggingface" in DOCKERFILE  # the model cache lies in a folder the user owns
    assert DOCKERFILE.index("ARG BASE_IMAGE=") < DOCKERFILE.index("FROM ${BASE_IMAGE}")
    assert 'CMD ["python", "scripts/serve_all.py"]' in DOCKERFILE
    assert "apt-get install -y --no-install-recommends nginx" in DOCKERFILE  # the same front as the tests


def test_cpu_torch_unless_asked_and_checked():
    assert "ARG TORCH_CUDA=0" in DOCKERFILE and "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in DOCKERFILE
    assert "torch.version.cuda is None" in DOCKERFILE  # a CUDA wheel in a CPU image fails the build
    pin = re.search(r"^torch==(\S+)$", (REPO_ROOT / "requirements.txt").read_text(), re.M)
    assert pin, "torch must stay pinned exactly in requirements.txt (the Dockerfile installs that pin first)"


def test_pip_settings_are_build_args_not_image_content():
    for line in DOCKERFILE.splitlines():
        assert not re.match(r"\s*(ENV|COPY|ADD)\b.*(PIP_CERT|PIP_INDEX|PIP_EXTRA|PIP_FIND|PIP_CONSTRAINT|\.crt|pip\.conf)",
                            line), line
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT", "PIP_CONSTRAINT"):
        assert f"ARG {name}\n" in DOCKERFILE


def test_build_context_keeps_data_venv_tests_and_secrets_out():
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".vitrine", "artifacts", "tests", "bench", "*.db", ".env"):
        assert path in ignored


def test_pip_build_args_mount_local_sources_read_only(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    index = tmp_path / "mirror" / "simple"
    index.mkdir(parents=True)
    cert = tmp_path / "ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch<=3\n")
    config = {"index-url": "https://pypi.example/simple", "extra-index-url": f"file://{index} file:///nope/simple",
              "find-links": str(wheels), "cert": str(cert), "constraint": str(constraints), "timeout": "60",
              "user": "true"}
    options = pip_build_args.build_options(config, "podman")
    assert "--build-arg=PIP_INDEX_URL=https://pypi.example/simple" in options
    assert f"--build-arg=PIP_EXTRA_INDEX_URL=file://{index}" in options  # the missing local index is dropped
    assert f"--build-arg=PIP_FIND_LINKS={wheels}" in options
    assert "--build-arg=PIP_CERT=/run/host-pip/cert.pem" in options
    assert f"--volume={cert}:/run/host-pip/cert.pem:ro" in options
    assert f"--volume={constraints}:/run/host-pip/constraint.txt:ro" in options
    assert f"--volume={index.parent}:{index.parent}:ro" in options  # relative file links of a local index
    assert f"--volume={wheels}:{wheels}:ro" in options
    assert "--build-arg=PIP_TIMEOUT=60" in options
    assert not any("USER" in option for option in options)  # only fetching settings pass
    assert all(option.endswith(":ro") for option in options if option.startswith("--volume="))
    docker = pip_build_args.build_options(config, "docker")  # `docker build` has no volumes
    assert docker == ["--build-arg=PIP_INDEX_URL=https://pypi.example/simple", "--build-arg=PIP_TIMEOUT=60"]


def test_pip_config_reads_this_hosts_pip():
    config = pip_build_args.pip_config(sys.executable)
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    for key in ("cert", "find-links", "extra-index-url", "index-url"):
        if f".{key}=" in listed:
            assert config.get(key), key


def test_make_image_passes_podman_the_options_that_work_here():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(["make", "-n", "image", "ENGINE=podman", "TORCH_INDEX_URL=", "BASE_IMAGE=localhost/x:y"],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    build = next(line for line in dry.stdout.splitlines() if " build " in line)
    for option in ("podman --runtime /usr/sbin/runc build", "--network host", "--ulimit nofile=4096:4096",
                   "--ulimit nproc=4096:4096", "--build-arg BASE_IMAGE=localhost/x:y", "--build-arg TORCH_CUDA=0"):
        assert option in dry.stdout.replace("\\\n", " "), option
    assert build
