"""Loading replicator.yml and schemas/*.yml: typed models, paths relative to the project, errors naming file and key."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from replicator.catalog import find_project_file, load_project
from replicator.config import TableConfig
from replicator.errors import ConfigError

PROJECT = """\
sources:
  app:
    url: sqlite:///app.db
lake:
  url: lake
warehouse:
  url: duckdb:///wh.duckdb
"""

RIDES = """\
source: app
table: rides
primary_key: id
watermark: updated_at
lookback: 5m
"""


@pytest.fixture(autouse=True)
def _no_project_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REPLICATOR_PROJECT", raising=False)


def make_project(folder: Path, project: str = PROJECT, tables: dict[str, str] | None = None) -> Path:
    """Write replicator.yml and schemas/<file> for each entry of `tables`; returns replicator.yml."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schemas").mkdir(exist_ok=True)
    path = folder / "replicator.yml"
    path.write_text(textwrap.dedent(project))
    for file_name, body in (tables if tables is not None else {"rides.yml": RIDES}).items():
        (folder / "schemas" / file_name).write_text(textwrap.dedent(body))
    return path


def config_error(path: Path, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_project(path, environ={} if environ is None else environ)
    return info.value


def problem_about(err: ConfigError, *needles: str) -> str:
    """The one problem line that contains every needle (fails the test if none does)."""
    matches = [p for p in err.problems if all(n in p for n in needles)]
    assert matches, f"no problem mentions {needles}; problems were:\n" + "\n".join(err.problems)
    return matches[0]


# --- a valid project -------------------------------------------------------------------------------------


def test_valid_project_loads_tables_named_by_file_stem(tmp_path: Path) -> None:
    path = make_project(tmp_path / "proj")
    project = load_project(path, environ={})

    assert list(project.tables) == ["rides"]
    rides = project.table("rides")
    assert isinstance(rides, TableConfig)
    assert rides.source == "app"
    assert rides.table == "rides"
    assert rides.primary_key == ["id"]
    assert rides.replication == "incremental"
    assert rides.watermark == "updated_at"
    assert rides.lookback == timedelta(minutes=5)
    assert project.table_files["rides"] == (tmp_path / "proj" / "schemas" / "rides.yml").resolve()
    assert project.path == path.resolve()


def test_relative_paths_resolve_against_project_folder_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = (tmp_path / "proj").resolve()
    path = make_project(root)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    project = load_project(path, environ={})

    assert project.config.sources["app"].url == f"sqlite:///{root / 'app.db'}"
    assert project.config.warehouse.url == f"duckdb:///{root / 'wh.duckdb'}"
    assert project.config.lake.url == str(root / "lake")
    assert project.schemas_dir == root / "schemas"


def test_relative_project_path_and_custom_schemas_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = (tmp_path / "proj").resolve()
    make_project(root, PROJECT + "schemas_dir: tables\n", tables={})
    (root / "tables").mkdir()
    (root / "tables" / "riders.yaml").write_text(
        "source: app\ntable: riders\nprimary_key: id\nreplication: full\n"
    )
    monkeypatch.chdir(tmp_path)

    project = load_project("proj", environ={})  # a folder means its replicator.yml

    assert project.path == root / "replicator.yml"
    assert project.schemas_dir == root / "tables"
    assert list(project.tables) == ["riders"]
    assert project.config.lake.url == str(root / "lake")


def test_absolute_and_remote_urls_are_left_alone(tmp_path: Path) -> None:
    path = make_project(
        tmp_path,
        """\
        sources:
          app:
            url: sqlite:////var/data/app.db
          pg:
            url: postgresql://db.internal/app
        lake:
          url: s3://bucket/lake
        warehouse:
          url: "duckdb:///:memory:"
        """,
    )
    config = load_project(path, environ={}).config
    assert config.sources["app"].url == "sqlite:////var/data/app.db"
    assert config.sources["pg"].url == "postgresql://db.internal/app"
    assert config.lake.url == "s3://bucket/lake"
    assert config.warehouse.url == "duckdb:///:memory:"


def test_unknown_table_name_lists_known_tables(tmp_path: Path) -> None:
    project = load_project(make_project(tmp_path), environ={})
    with pytest.raises(ConfigError, match=r"no table named 'ridez'.*known tables: rides"):
        project.table("ridez")


# --- environment variables ----------------------------------------------------------------------------------


def test_env_vars_expand_in_nested_strings(tmp_path: Path) -> None:
    path = make_project(
        tmp_path,
        """\
        sources:
          app:
            url: postgresql://${PGUSER}:${PGPASSWORD:-nopass}@${PGHOST:-localhost}:5432/app
        lake:
          url: s3://${LAKE_BUCKET}/${LAKE_PREFIX:-raw}
        warehouse:
          url: ${WAREHOUSE_URL:-duckdb:///wh.duckdb}
        """,
        tables={"rides.yml": RIDES + "tags:\n  team: ${TEAM:-data}\n"},
    )
    environ = {"PGUSER": "etl", "PGHOST": "db.internal", "LAKE_BUCKET": "acme", "LAKE_PREFIX": ""}

    project = load_project(path, environ=environ)

    assert project.config.sources["app"].url == "postgresql://etl:nopass@db.internal:5432/app"
    # A variable set to the empty string takes the default, like the shell's ${VAR:-default}.
    assert project.config.lake.url == "s3://acme/raw"
    assert project.config.warehouse.url == f"duckdb:///{(tmp_path / 'wh.duckdb').resolve()}"
    assert project.table("rides").tags == {"team": "data"}


def test_env_var_without_default_names_file_key_and_variable(tmp_path: Path) -> None:
    path = make_project(
        tmp_path,
        """\
        sources:
          app:
            url: postgresql://etl:${PGPASSWORD}@db/app
        lake:
          url: lake
        warehouse:
          url: duckdb:///wh.duckdb
        """,
    )
    err = config_error(path, environ={"OTHER": "x"})
    line = problem_about(err, str(path.resolve()), "sources.app.url", "PGPASSWORD")
    assert "not set" in line


def test_env_var_missing_in_table_file_names_that_file(tmp_path: Path) -> None:
    path = make_project(tmp_path, tables={"rides.yml": RIDES + "tags:\n  team: ${TEAM}\n"})
    err = config_error(path)
    problem_about(err, str((tmp_path / "schemas" / "rides.yml").resolve()), "tags.team", "TEAM")


# --- unknown keys and malformed YAML --------------------------------------------------------------------


def test_unknown_table_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = make_project(tmp_path, tables={"rides.yml": RIDES.replace("primary_key", "primry_key")})
    err = config_error(path)
    problem_about(err, str(tmp_path / "schemas" / "rides.yml"), "primry_key", "did you mean 'primary_key'")


def test_unknown_nested_project_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = make_project(tmp_path, PROJECT.replace("  url: lake", "  ur: lake"))
    err = config_error(path)
    problem_about(err, str(path), "lake.ur", "did you mean 'url'")


def test_unknown_key_inside_a_named_source_suggests_the_right_one(tmp_path: Path) -> None:
    # `sources` is a mapping of name -> SourceConfig; a typo inside one source deserves the same hint.
    path = make_project(tmp_path, PROJECT.replace("    url: sqlite:///app.db", "    urll: sqlite:///app.db"))
    err = config_error(path)
    problem_about(err, str(path), "sources.app.urll", "did you mean 'url'")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("source: app\ntable: rides\n  primary_key: id\n", 3),
        ("source: app\ntable: rides\nprimary_key: [id\n", 4),
    ],
)
def test_malformed_yaml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = make_project(tmp_path, tables={"rides.yml": text})
    err = config_error(path)
    problem_about(err, str(tmp_path / "schemas" / "rides.yml"), f"line {line}", "malformed YAML")


def test_warehouse_memory_limit_defaults_and_rejects_a_non_size(tmp_path: Path) -> None:
    assert load_project(make_project(tmp_path)).config.warehouse.memory_limit == "auto"
    path = make_project(tmp_path, PROJECT + "  memory_limit: lots\n")
    problem_about(config_error(path), str(path), "warehouse.memory_limit", "write auto, or a size like 512MB or 2GiB")


def test_lake_file_max_bytes_takes_sizes(tmp_path: Path) -> None:
    assert load_project(make_project(tmp_path)).config.lake.file_max_bytes == 256 * 2**20
    path = make_project(tmp_path, PROJECT.replace("  url: lake", "  url: lake\n  file_max_bytes: 1GB"))
    assert load_project(path).config.lake.file_max_bytes == 10**9
    path = make_project(tmp_path, PROJECT.replace("  url: lake", "  url: lake\n  file_max_bytes: big"))
    problem_about(config_error(path), str(path), "lake.file_max_bytes", "write e.g. 256MB or 1GiB")


def test_malformed_project_file_names_file_and_line(tmp_path: Path) -> None:
    path = make_project(tmp_path, "sources:\n  app:\n    url: 'sqlite:///app.db\nlake:\n")
    err = config_error(path)
    problem_about(err, str(path), "line ")


def test_project_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = make_project(tmp_path, "- just\n- a list\n")
    err = config_error(path)
    problem_about(err, str(path), "mapping")


# --- wrong values: one line per problem, every file at once -------------------------------------------------


def test_wrong_value_types_give_one_line_each(tmp_path: Path) -> None:
    body = "source: app\ntable: rides\nprimary_key: 5\nwatermark: updated_at\nlookback: 5 minutes\nreplication: sometimes\n"
    path = make_project(tmp_path, tables={"rides.yml": body})
    err = config_error(path)
    file = str(tmp_path / "schemas" / "rides.yml")

    assert len(err.problems) == 3
    assert all("\n" not in p and p.startswith(file) for p in err.problems)
    problem_about(err, "primary_key", "5")
    problem_about(err, "lookback", "5 minutes")
    problem_about(err, "replication", "sometimes")
    assert str(err) == "\n".join(err.problems)


def test_problems_of_every_table_file_are_listed_at_once(tmp_path: Path) -> None:
    path = make_project(
        tmp_path,
        tables={
            "rides.yml": RIDES.replace("primary_key", "primry_key"),
            "users.yml": "source: app\ntable: users\nprimary_key: id\nreplication: sometimes\n",
            "cities.yml": "source: app\ntable: cities\nprimary_key: id\nreplication: full\n",
        },
    )
    err = config_error(path)
    assert len(err.problems) >= 2
    problem_about(err, "rides.yml", "primry_key")
    problem_about(err, "users.yml", "replication")
    assert not any("cities.yml" in p for p in err.problems)


def test_problems_of_project_file_and_table_files_are_listed_at_once(tmp_path: Path) -> None:
    path = make_project(
        tmp_path,
        PROJECT.replace("  url: lake", "  ur: lake"),
        tables={"rides.yml": RIDES.replace("primary_key", "primry_key")},
    )
    err = config_error(path)
    problem_about(err, "replicator.yml", "lake.ur")
    problem_about(err, "rides.yml", "primry_key")


def test_problem_lines_never_show_a_password(tmp_path: Path) -> None:
    # A common slip: the URL written straight under the source name instead of under `url:`.
    # The CLI prints `problems` line by line, so each line must be masked, not just str(err).
    path = make_project(
        tmp_path,
        PROJECT.replace("  app:\n    url: sqlite:///app.db", "  app: postgresql://etl:s3cret@db/app"),
    )
    err = config_error(path)
    problem_about(err, str(path), "sources.app")
    assert "s3cret" not in str(err)
    assert not [p for p in err.problems if "s3cret" in p]


def test_incremental_without_watermark_asks_for_one(tmp_path: Path) -> None:
    path = make_project(tmp_path, tables={"rides.yml": "source: app\ntable: rides\nprimary_key: id\n"})
    err = config_error(path)
    line = problem_about(err, str(tmp_path / "schemas" / "rides.yml"), "watermark")
    assert "replication: full" in line


def test_columns_must_include_the_primary_key(tmp_path: Path) -> None:
    body = RIDES + "columns: [updated_at, fare]\n"
    path = make_project(tmp_path, tables={"rides.yml": body})
    err = config_error(path)
    problem_about(err, str(tmp_path / "schemas" / "rides.yml"), "columns", "'id'")


def test_unknown_source_names_file_and_known_sources(tmp_path: Path) -> None:
    project = PROJECT.replace("lake:", "  billing:\n    url: sqlite:///billing.db\nlake:")
    path = make_project(tmp_path, project, tables={"rides.yml": RIDES.replace("source: app", "source: ap")})
    err = config_error(path)
    line = problem_about(err, str(tmp_path / "schemas" / "rides.yml"), "source", "'ap'")
    assert "app" in line.split("'ap'", 1)[1]
    assert "billing" in line


def test_same_source_table_in_two_files_names_both(tmp_path: Path) -> None:
    path = make_project(tmp_path, tables={"rides.yml": RIDES, "rides_again.yml": RIDES})
    err = config_error(path)
    problem_about(err, str(tmp_path / "schemas" / "rides.yml"), str(tmp_path / "schemas" / "rides_again.yml"))


@pytest.mark.parametrize("file_name", ["my-table.yml", "1rides.yml", "my table.yml"])
def test_file_name_must_be_an_identifier(tmp_path: Path, file_name: str) -> None:
    path = make_project(tmp_path, tables={file_name: RIDES})
    err = config_error(path)
    problem_about(err, str(tmp_path / "schemas" / file_name), Path(file_name).stem)


def test_missing_schemas_dir_is_reported(tmp_path: Path) -> None:
    path = make_project(tmp_path, PROJECT + "schemas_dir: nowhere\n")
    err = config_error(path)
    problem_about(err, str(path), "schemas_dir", str(tmp_path / "nowhere"))


# --- find_project_file ----------------------------------------------------------------------------------


def test_find_project_file_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = make_project(tmp_path / "explicit")
    from_env = make_project(tmp_path / "env")
    in_cwd = make_project(tmp_path / "cwd")
    monkeypatch.chdir(in_cwd.parent)

    assert find_project_file() == in_cwd.resolve()
    monkeypatch.setenv("REPLICATOR_PROJECT", str(from_env))
    assert find_project_file() == from_env.resolve()
    assert find_project_file(explicit) == explicit.resolve()
    assert find_project_file(str(explicit)) == explicit.resolve()


def test_find_project_file_folder_means_its_replicator_yml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_project(tmp_path / "proj")
    assert find_project_file(tmp_path / "proj") == path.resolve()
    monkeypatch.setenv("REPLICATOR_PROJECT", str(tmp_path / "proj"))
    assert find_project_file() == path.resolve()


@pytest.mark.parametrize("how", ["explicit", "env", "cwd"])
def test_find_project_file_missing_says_how_to_point_at_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nope" / "replicator.yml"
    if how == "env":
        monkeypatch.setenv("REPLICATOR_PROJECT", str(missing))
    with pytest.raises(ConfigError) as info:
        find_project_file(missing if how == "explicit" else None)
    message = str(info.value)
    assert "--project" in message
    assert "REPLICATOR_PROJECT" in message
    assert "replicator.yml" in message


# --- lookback --------------------------------------------------------------------------------------------


def table(**overrides: object) -> TableConfig:
    data = {"source": "app", "table": "t", "primary_key": "id", "watermark": "updated_at", **overrides}
    return TableConfig.model_validate(data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("0s", timedelta(0)),
        ("2d", timedelta(days=2)),
        ("90s", timedelta(seconds=90)),
        ("500ms", timedelta(milliseconds=500)),
    ],
)
def test_lookback_durations(text: str, expected: timedelta) -> None:
    assert table(lookback=text).lookback == expected


def test_lookback_defaults_to_zero() -> None:
    assert table().lookback == timedelta(0)


def test_integer_lookback_stays_an_integer() -> None:
    # For an integer watermark (an id or a version counter) a bare integer is an offset in its units.
    lookback = table(lookback=1000).lookback
    assert type(lookback) is int
    assert lookback == 1000


def test_integer_lookback_from_yaml_stays_an_integer(tmp_path: Path) -> None:
    body = "source: app\ntable: events\nprimary_key: id\nwatermark: id\nlookback: 1000\n"
    project = load_project(make_project(tmp_path, tables={"events.yml": body}), environ={})
    assert project.table("events").lookback == 1000
    assert type(project.table("events").lookback) is int


@pytest.mark.parametrize("bad", [-5, "-5m", "5 minutes", "garbage", "", "1m30", True, -1.5])
def test_lookback_rejects_negative_and_garbage(bad: object) -> None:
    with pytest.raises(ValueError, match="lookback"):
        table(lookback=bad)
