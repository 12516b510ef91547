"""examples/cluster: the KubeRay and SLURM set-ups parse and run the command they promise.

No Kubernetes or SLURM here, so each file is checked for what would break it on a real one:
the manifests load as YAML and fit together (the Secret's name and keys, the Ray version of the
lock, the GPUs the workers pack onto); the batch script runs against stand-ins for `srun`,
`scontrol` and `ray` that record their arguments, and the `hpstudy` command both hand to Ray
is parsed by hpstudy's own argument parser and names a spec that loads.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import studies
from studies.cli import build_parser, parse_set

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "examples" / "cluster"
KUBERAY = CLUSTER / "kuberay"
SBATCH = CLUSTER / "slurm" / "hpstudy.sbatch"
# user:password@ in a URL: the examples must take passwords from a Secret or ~/.pgpass only
PASSWORD_IN_URL = re.compile(r"://[^/@\s:]+:[^@\s]+@")


def locked_ray_version() -> str:
    """The ray version `make test` installs (requirements/dev.txt)."""
    lock = (REPO / "requirements" / "dev.txt").read_text()
    match = re.search(r"^ray==(\S+)", lock, re.MULTILINE)
    assert match, "requirements/dev.txt pins no ray"
    return match.group(1)


def parse_run(argv: list[str]) -> Any:
    """hpstudy's own parse of a `hpstudy run ...` command line, with its spec loaded."""
    assert argv[:2] == ["hpstudy", "run"], argv
    args = build_parser().parse_args(argv[1:])
    overrides = parse_set(args.train_fields)
    assert studies.spec_of(args.spec).name == args.spec  # a spec that exists and loads
    return args, overrides


def manifests(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((KUBERAY / name).read_text()) if doc]


def containers(pod_template: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod_template["spec"]["containers"])


@pytest.fixture(scope="module")
def rayjob() -> dict[str, Any]:
    [job] = manifests("rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    return job


def test_rayjob_runs_hpstudy_on_ray_with_the_url_from_the_secret(rayjob: dict[str, Any]) -> None:
    args, overrides = parse_run(shlex.split(rayjob["spec"]["entrypoint"]))
    assert args.ray == "auto"
    assert args.storage == "env:HPSTUDY_STORAGE"
    assert overrides == {"data_dir": "/data"}  # where the Dockerfile put MNIST
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    [container] = containers(head)
    [env] = [e for e in container["env"] if e["name"] == "HPSTUDY_STORAGE"]
    assert "value" not in env, "the URL (and its password) belongs in a Secret"
    secret = env["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "hpstudy-db", "key": "url"}


def test_rayjob_workers_fill_the_gpus_it_asks_for(rayjob: dict[str, Any]) -> None:
    args, _ = parse_run(shlex.split(rayjob["spec"]["entrypoint"]))
    groups = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    gpus = sum(
        group["replicas"] * int(c["resources"]["limits"].get("nvidia.com/gpu", 0))
        for group in groups
        for c in containers(group["template"])
    )
    cpus = sum(
        group["replicas"] * int(c["resources"]["limits"]["cpu"])
        for group in groups
        for c in containers(group["template"])
    )
    assert gpus > 0
    assert args.workers * args.gpus_per_worker == pytest.approx(gpus)  # no GPU idle, none short
    assert args.workers * args.cpus_per_worker <= cpus
    head_params = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]
    assert head_params["num-cpus"] == "0"  # no trial lands on the head, which has no GPU


def test_rayjob_image_and_ray_version_match_the_dockerfile_and_the_lock(
    rayjob: dict[str, Any],
) -> None:
    version = locked_ray_version()
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == version
    dockerfile = (KUBERAY / "Dockerfile").read_text()
    [base] = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert base.startswith(f"rayproject/ray:{version}-py311"), base
    spec = rayjob["spec"]["rayClusterSpec"]
    pods = [spec["headGroupSpec"]["template"], rayjob["spec"]["submitterPodTemplate"]]
    pods += [group["template"] for group in spec["workerGroupSpecs"]]
    images = {c["image"] for pod in pods for c in containers(pod)}
    assert len(images) == 1, f"every pod runs the one image, got {images}"


def test_dockerfile_copies_what_the_repository_has_and_installs_from_the_lock() -> None:
    dockerfile = (KUBERAY / "Dockerfile").read_text()
    sources = [
        part
        for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE)
        for part in line.split()[:-1]
        if not part.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"Dockerfile copies {source}, which the repository lacks"
    assert "--require-hashes" in dockerfile and "requirements/dev.txt" in dockerfile
    # every top-level package hpstudy installs is copied in
    for package in ("studies/", "search_space/", "trainer/"):
        assert package in sources


def test_postgres_reads_the_secret_the_rayjob_names_and_no_file_holds_a_password() -> None:
    docs = manifests("postgres.yaml")
    kinds = {doc["kind"] for doc in docs}
    assert kinds == {"Service", "StatefulSet"}
    [stateful] = [doc for doc in docs if doc["kind"] == "StatefulSet"]
    [container] = containers(stateful["spec"]["template"])
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "hpstudy-db"
    [service] = [doc for doc in docs if doc["kind"] == "Service"]
    assert service["metadata"]["name"] == "hpstudy-db"  # the host in the Secret's url
    for path in CLUSTER.rglob("*"):
        if path.is_file() and path.suffix != ".md":  # comments may show a placeholder command
            lines = [
                line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
            ]
            assert not PASSWORD_IN_URL.search("\n".join(lines)), f"{path} holds a password"


def _stand_in(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_sbatch_script_starts_ray_on_every_node_and_runs_hpstudy_on_it(tmp_path: Path) -> None:
    directives = re.findall(r"^#SBATCH (\S+)", SBATCH.read_text(), re.MULTILINE)
    options = dict(d.split("=", 1) for d in directives)
    nodes, gpus = int(options["--nodes"]), int(options["--gpus-per-task"])
    assert options["--ntasks-per-node"] == "1"  # one Ray node per machine
    # Stand-ins that record how the script calls SLURM and Ray; the batch environment SLURM sets.
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    _stand_in(bin_dir, "scontrol", "printf 'gpu-node-1\\ngpu-node-2\\n'\n")
    _stand_in(
        bin_dir,
        "srun",
        # srun runs its command once per node; only the line that starts Ray is recorded.
        'while [[ "$1" == -* ]]; do if [ "$1" = -w ]; then shift; fi; shift; done\n'
        'if [ "$1" = hostname ]; then echo 10.0.0.7; else "$@"; fi\n',
    )
    _stand_in(bin_dir, "ray", f'printf "%s\\n" "$@" > {calls}\n')
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text("")
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "HPSTUDY_VENV": str(venv),
        "SLURM_JOB_NODELIST": "gpu-node-[1-2]",
        "SLURM_JOB_NUM_NODES": str(nodes),
        "SLURM_GPUS_PER_TASK": str(gpus),
        "SLURM_CPUS_PER_TASK": options["--cpus-per-task"],
    }
    done = subprocess.run(
        ["bash", str(SBATCH)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    argv = calls.read_text().splitlines()
    assert argv[0] == "symmetric-run"
    ray_args, command = argv[1 : argv.index("--")], argv[argv.index("--") + 1 :]
    ray_options = dict(zip(ray_args[::2], ray_args[1::2], strict=True))
    assert ray_options["--address"] == "10.0.0.7:6379"
    assert ray_options["--min-nodes"] == str(nodes)
    assert ray_options["--num-gpus"] == str(gpus)
    args, overrides = parse_run(command)
    assert args.ray == "auto"
    assert args.workers * args.gpus_per_worker == nodes * gpus  # every GPU packed, none short
    assert overrides == {"data_dir": f"{tmp_path}/hpstudy-data"}  # the README's fetch folder
    assert args.storage is None  # the URL comes from HPSTUDY_STORAGE, its password from .pgpass
