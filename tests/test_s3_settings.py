"""Which S3 client a configuration gets, and what the fast one reads from options, variables, files.

Every configuration the fast client does not understand must go to s3fs (the
``Fallback`` names why), so nothing that worked with s3fs stops working.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowenv.errors import UsageError
from flowenv.store import open_store
from flowenv.store.s3_settings import Fallback, fsspec_config, resolve

STATIC = {"key": "AKIDOPTIONS", "secret": "secret-from-options"}


@pytest.fixture
def aws_home(tmp_path: Path) -> dict[str, str]:
    """An environment with empty AWS files of its own (never the user's ~/.aws)."""
    credentials, config = tmp_path / "credentials", tmp_path / "config"
    credentials.write_text("")
    config.write_text("")
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_CONFIG_FILE": str(config),
        "FSSPEC_CONFIG_DIR": str(tmp_path / "fsspec"),
    }


def test_options_as_s3fs_takes_them(aws_home) -> None:
    options = {
        **STATIC,
        "token": "tok",
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000/", "region_name": "eu-west-3"},
        "config_kwargs": {"s3": {"addressing_style": "virtual"}, "read_timeout": 7},
        "skip_instance_cache": True,
    }
    settings = resolve(options, aws_home)
    assert settings.credentials is not None
    assert (settings.credentials.key, settings.credentials.secret, settings.credentials.token) == (
        "AKIDOPTIONS",
        "secret-from-options",
        "tok",
    )
    assert (settings.endpoint, settings.region, settings.addressing) == (
        "http://127.0.0.1:9000",
        "eu-west-3",
        "virtual",
    )
    assert settings.read_timeout == 7.0
    assert "secret-from-options" not in repr(settings)


def test_environment_variables(aws_home) -> None:
    env = {
        **aws_home,
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_SESSION_TOKEN": "env-token",
        "AWS_DEFAULT_REGION": "ap-south-1",
        "AWS_ENDPOINT_URL": "http://general:1",
        "AWS_ENDPOINT_URL_S3": "http://s3-specific:2",
    }
    settings = resolve({}, env)
    assert settings.credentials is not None
    assert (settings.credentials.key, settings.credentials.token) == ("AKIDENV", "env-token")
    assert (settings.region, settings.endpoint) == ("ap-south-1", "http://s3-specific:2")
    # AWS_REGION is the newer name and wins; options win over variables.
    assert resolve({}, {**env, "AWS_REGION": "eu-north-1"}).region == "eu-north-1"
    over = resolve({**STATIC, "endpoint_url": "http://opt:3"}, env)
    assert over.credentials is not None
    assert (over.credentials.key, over.endpoint) == ("AKIDOPTIONS", "http://opt:3")
    ignored = resolve({}, {**env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"})
    assert ignored.endpoint is None


def test_shared_files_and_profiles(aws_home) -> None:
    Path(aws_home["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s-default\n"
        "[team]\naws_access_key_id = AKIDTEAM\naws_secret_access_key = s-team\n"
    )
    Path(aws_home["AWS_CONFIG_FILE"]).write_text(
        "[default]\nregion = us-west-2\n"
        "[profile team]\nregion = eu-central-1\nendpoint_url = http://team-endpoint:9\n"
        "[profile configonly]\naws_access_key_id = AKIDCONF\naws_secret_access_key = s-conf\n"
    )
    default = resolve({}, aws_home)
    assert default.credentials is not None
    assert (default.credentials.key, default.region) == ("AKIDDEFAULT", "us-west-2")
    team = resolve({}, {**aws_home, "AWS_PROFILE": "team"})
    assert team.credentials is not None
    assert (team.credentials.key, team.region, team.endpoint) == (
        "AKIDTEAM",
        "eu-central-1",
        "http://team-endpoint:9",
    )
    conf = resolve({"profile": "configonly"}, aws_home)
    assert conf.credentials is not None
    assert conf.credentials.key == "AKIDCONF"
    # An explicit profile option overrides the AWS_* key variables (as in botocore).
    env_keys = {**aws_home, "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "e"}
    chosen = resolve({"profile": "team"}, env_keys).credentials
    assert chosen is not None
    assert chosen.key == "AKIDTEAM"


@pytest.mark.parametrize(
    ("options", "environment", "config", "why"),
    [
        ({**STATIC, "s3_additional_kwargs": {"ACL": "x"}}, {}, "",
         "store option 's3_additional_kwargs'"),
        ({**STATIC, "requester_pays": True}, {}, "", "store option 'requester_pays'"),
        ({**STATIC, "version_aware": True}, {}, "", "store option 'version_aware'"),
        ({**STATIC, "client_kwargs": {"proxies": {}}}, {}, "",
         "store option client_kwargs.proxies"),
        ({**STATIC, "config_kwargs": {"signature_version": "s3"}}, {}, "",
         "store option config_kwargs.signature_version"),
        ({"key": "only-a-key"}, {}, "", "a key without a secret"),
        ({}, {}, "", "no static credentials"),
        ({}, {"AWS_WEB_IDENTITY_TOKEN_FILE": "/t", "AWS_ROLE_ARN": "arn"}, "",
         "environment variable AWS_WEB_IDENTITY_TOKEN_FILE"),
        ({**STATIC}, {"HTTPS_PROXY": "http://proxy:3128"}, "", "environment variable HTTPS_PROXY"),
        ({"profile": "sso"}, {}, "[profile sso]\nsso_session = corp\nsso_account_id = 1\n",
         "profile setting 'sso_account_id'"),
        ({"profile": "proc"}, {}, "[profile proc]\ncredential_process = /bin/creds\n",
         "profile setting 'credential_process'"),
        ({}, {"AWS_PROFILE": "role"},
         "[profile role]\nrole_arn = arn:x\nsource_profile = default\n",
         "profile setting 'role_arn'"),
        ({"profile": "missing"}, {}, "", "profile 'missing' not found"),
    ],
)  # fmt: skip
def test_what_only_s3fs_serves(aws_home, options, environment, config, why) -> None:
    Path(aws_home["AWS_CONFIG_FILE"]).write_text(config)
    with pytest.raises(Fallback) as caught:
        resolve(options, {**aws_home, **environment})
    assert str(caught.value).startswith(why)


def test_fsspec_configuration_is_read_as_fsspec_reads_it(aws_home, tmp_path) -> None:
    """Files, then FSSPEC_S3 (JSON), then FSSPEC_S3_<OPTION>; given options win key by key."""
    directory = Path(aws_home["FSSPEC_CONFIG_DIR"])
    directory.mkdir()
    (directory / "a.json").write_text(json.dumps({"s3": {"key": "FROMFILE", "anon": False}}))
    (directory / "b.ini").write_text("[s3]\nsecret = file-secret\n[gcs]\nproject = other\n")
    env = {
        **aws_home,
        "FSSPEC_S3": json.dumps({"endpoint_url": "http://from-env:1"}),
        "FSSPEC_S3_ENDPOINT_URL": "http://from-option-var:2",
    }
    assert fsspec_config(env) == {
        "key": "FROMFILE",
        "anon": False,
        "secret": "file-secret",
        "endpoint_url": "http://from-option-var:2",
    }
    settings = resolve({"endpoint_url": "http://given:3"}, env)
    assert settings.credentials is not None
    assert (settings.credentials.key, settings.endpoint) == ("FROMFILE", "http://given:3")


def test_anonymous_needs_no_credentials(aws_home) -> None:
    assert resolve({"anon": True}, aws_home).credentials is None


def test_the_switch(aws_home, monkeypatch, tmp_path) -> None:
    for name, value in aws_home.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "FSSPEC_S3"):
        monkeypatch.delenv(name, raising=False)
    options = {**STATIC, "client_kwargs": {"endpoint_url": "http://127.0.0.1:1"}}
    assert open_store("s3://b/x", options).backend.module == "flowenv.store.s3_fast"
    monkeypatch.setenv("FLOWENV_S3_BACKEND", "s3fs")
    assert open_store("s3://b/x", options).backend.module == "s3fs"
    monkeypatch.setenv("FLOWENV_S3_BACKEND", "auto")
    unknown = {**options, "requester_pays": True}
    assert open_store("s3://b/x", unknown).backend.module == "s3fs"  # falls back, silently
    monkeypatch.setenv("FLOWENV_S3_BACKEND", "fast")
    with pytest.raises(UsageError) as caught:
        open_store("s3://b/x", unknown)
    assert caught.value.message == (
        "FLOWENV_S3_BACKEND=fast cannot serve this store: store option 'requester_pays'"
    )
    monkeypatch.setenv("FLOWENV_S3_BACKEND", "quick")
    with pytest.raises(UsageError) as caught:
        open_store("s3://b/x", options)
    assert caught.value.message == "FLOWENV_S3_BACKEND='quick': expected 'fast', 's3fs' or unset"


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("bad.json", '{"s3": {"key": "AKID",\n  secret: 1}}',
         "Expecting property name enclosed in double quotes (line 2)"),
        ("bad.json", '["s3"]', "expected a table of protocols, each a table of options"),
        ("bad.ini", "[s3]\nkey = a\ndo-not-show\n", "cannot parse line 3"),
        ("bad.ini", "secret = do-not-show\n[s3]\n", "File contains no section headers. (line 1)"),
        ("bad.ini", "[s3]\nkey = a\nkey = b\n",
         "While reading from '{path}' [line  3]: option 'key' in section 's3' already exists"),
    ],
)  # fmt: skip
def test_a_malformed_fsspec_configuration_file_is_a_usage_error(
    aws_home, name: str, text: str, why: str
) -> None:
    """Named with its line, never quoting the file's contents (a secret may be on that line)."""
    directory = Path(aws_home["FSSPEC_CONFIG_DIR"])
    directory.mkdir()
    path = directory / name
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        resolve(STATIC, aws_home)
    assert caught.value.message == f"fsspec configuration {path}: {why.format(path=path)}"
    assert "do-not-show" not in caught.value.message


def test_shared_files_formatted_loosely_read_as_botocore_reads_them(aws_home) -> None:
    """Comments, indentation, no spaces around '=', upper-case names; ``[profile x]`` is the
    config file's spelling only ([x] there is ignored), as botocore has it."""
    Path(aws_home["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "# team keys\n; another comment\n[team]\nAWS_ACCESS_KEY_ID=AKIDTEAM\n"
        "aws_secret_access_key   =   s-team\n\n[profile other]\n"
        "aws_access_key_id = AKIDWRONG\naws_secret_access_key = s-wrong\n"
    )
    Path(aws_home["AWS_CONFIG_FILE"]).write_text(
        "[team]\nregion = us-west-1\n[profile team]\nregion = eu-south-1\n"
        "[other]\naws_access_key_id = AKIDIGNORED\naws_secret_access_key = s-ignored\n"
    )
    team = resolve({}, {**aws_home, "AWS_PROFILE": "team"})
    assert team.credentials is not None
    assert (team.credentials.key, team.credentials.secret, team.region) == (
        "AKIDTEAM", "s-team", "eu-south-1",
    )  # fmt: skip
    # "other" exists only as [profile other] in credentials and [other] in config: not found.
    with pytest.raises(Fallback, match="profile 'other' not found"):
        resolve({}, {**aws_home, "AWS_PROFILE": "other"})
