"""The container images and compose file start the same `oddasr` subcommands the README
documents and the CLI knows. (hadolint and dclint check the files themselves in `make lint`.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from shared.cli.main import _parser

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = ["Dockerfile.api", "Dockerfile.worker", "Dockerfile.worker-gpu"]


def cli_subcommands() -> set[str]:
    parser = _parser()
    action = next(a for a in parser._actions if a.dest == "command")  # noqa: SLF001
    return set(action.choices)


def instruction(dockerfile: str, name: str) -> list[str]:
    text = (ROOT / dockerfile).read_text()
    match = re.search(rf"^{name}\s+(\[.*\])\s*$", text, flags=re.MULTILINE)
    assert match, f"{dockerfile} has no exec-form {name}"
    return list(json.loads(match.group(1)))


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_run_documented_oddasr_subcommands(dockerfile: str) -> None:
    assert instruction(dockerfile, "ENTRYPOINT") == ["oddasr"]
    subcommand = instruction(dockerfile, "CMD")[0]
    assert subcommand in cli_subcommands()
    assert f"oddasr {subcommand}" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_run_as_a_non_root_user_and_bake_no_secrets(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert not re.search(r"(SECRET|PASSWORD|ACCESS_KEY)[A-Z_]*=\S", text)
    assert "HEALTHCHECK" in text


def test_api_image_has_no_engines() -> None:
    text = (ROOT / "Dockerfile.api").read_text()
    assert "torch==" not in text and "[worker]" not in text and "COPY worker" not in text


def test_compose_services_use_cli_subcommands_and_have_health_checks() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("redis", "postgres", "s3", "migrate", "api", "worker-cpu", "worker-stream", "worker-webhooks",
                 "worker-gpu", "flower"):
        assert name in services, name
    for name, service in services.items():
        if "build" in service:
            assert service["command"][0] in cli_subcommands(), name
        if name != "migrate":
            assert "healthcheck" in service, name
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "ODDASR_FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert services["migrate"]["restart"] == "no"


def _dockerfile_env(dockerfile: str) -> dict[str, str]:
    text = (ROOT / dockerfile).read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV\s+(.+)$", text, flags=re.MULTILINE):
        env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def _compose_api_env() -> dict[str, str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"]["api"]["environment"]

    def substituted(value: object) -> str:
        # ${NAME:?message} must be set by the operator; ${NAME:-default} falls back.
        text = str(value)
        text = re.sub(r"\$\{\w+:\?[^}]*\}", "operator-supplied", text)
        return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)

    return {name: substituted(value) for name, value in environment.items()}


def test_the_compose_api_requires_keys_and_passes_the_exposure_check() -> None:
    """The image binds 0.0.0.0, so the API would refuse to start with auth off: compose must
    turn auth on, with a hash secret the operator supplies and limits for its keys."""
    from shared.auth.exposure import api_exposure_problem
    from shared.config import Settings

    env = {**_dockerfile_env("Dockerfile.api"), **_compose_api_env()}
    assert env["ODDASR_HOST"] == "0.0.0.0"
    assert env["ODDASR_AUTH_MODE"] == "required"
    assert env["ODDASR_API_KEY_HASH_SECRET"] == "operator-supplied"
    assert int(env["ODDASR_DEFAULT_REQUESTS_PER_MINUTE"]) > 0
    fields = {name.removeprefix("ODDASR_").lower(): value for name, value in env.items()
              if name.startswith("ODDASR_") and name.removeprefix("ODDASR_").lower() in Settings.model_fields}
    fields.pop("database_url", None)
    assert api_exposure_problem(Settings(**fields)) is None
    fields["auth_mode"] = "off"
    assert "auth_mode=off" in (api_exposure_problem(Settings(**fields)) or "")


def test_services_built_from_one_dockerfile_share_one_named_image() -> None:
    """Each Dockerfile is built once (`make images-test` builds them, then `docker compose up
    --no-build`): every service with a build names its image, one name per Dockerfile."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    images: dict[str, set[str]] = {}
    for name, service in services.items():
        if "build" in service:
            assert "image" in service, f"{name} builds an image but names none"
            images.setdefault(service["build"]["dockerfile"], set()).add(service["image"])
    assert set(images) == set(DOCKERFILES)
    assert all(len(names) == 1 for names in images.values()), images


def test_the_build_context_carries_only_what_the_images_copy() -> None:
    """Without a .dockerignore the context is the whole checkout, .venv (gigabytes) included."""
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1:], "everything is excluded first, then what is copied"
    for dockerfile in DOCKERFILES:
        text = (ROOT / dockerfile).read_text()
        for line in re.findall(r"^COPY\s+(.+)$", text, flags=re.MULTILINE):
            for source in line.split()[:-1]:
                assert f"!{source}" in ignored, f"{dockerfile} copies {source}, which .dockerignore leaves out"
