"""Where the configuration comes from, and which source gave each value (pydantic-settings sources).

Sources, highest precedence first, merged key by key:

1. the environment: `ACS_SMS_CONSUMER_` + the key with `__` between nesting levels
   (`ACS_SMS_CONSUMER_HTTP__PORT`, `ACS_SMS_CONSUMER_PIPELINE__LABELS__USAGE_TYPES`); for a secret
   key (the two connection strings) also the same name + `_FILE`, naming a file whose content is the
   value (`ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING_FILE=/var/run/secrets/...`). Setting both a
   variable and its `_FILE` is an error: nobody should have to guess which one wins;
2. the secrets directory (`--secrets-dir`, else `ACS_SMS_CONSUMER_SECRETS_DIR`): one file per key,
   named like its environment variable (pydantic-settings' convention for nested secrets; case does
   not matter), e.g. `ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING`; other files are ignored;
3. the YAML file (`--config`, else `ACS_SMS_CONSUMER_CONFIG`);
4. the defaults of the models (consumer/config.py).

Values from the environment and from secret files are stripped; lists (`[1, 5, 10]`) are parsed as
YAML, everything else stays a string that pydantic converts where the key is a number or a boolean,
so secrets and names that look like numbers (a hub named `2024`) stay as written. Blank environment
variables are ignored. A prefixed variable or secret file that names no key is an error, like an
unknown key in the file (a typo such as `ACS_SMS_CONSUMER_HTTP_PORT` is not silently ignored).

Errors name the key, the configuration file, and the variable or file a value came from, never a
value: a YAML syntax error gives line and column only (PyYAML quotes the line, which may hold a
secret); validation errors are printed without their input.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    YamlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError
from pydantic_settings.sources.types import ConfigFileSourceType

ENV_PREFIX = "ACS_SMS_CONSUMER_"
ENV_NESTING = "__"
FILE_SUFFIX = "_FILE"
#: The configuration file, when `--config` is not given.
CONFIG_VARIABLE = ENV_PREFIX + "CONFIG"
#: The secrets directory, when `--secrets-dir` is not given.
SECRETS_DIR_VARIABLE = ENV_PREFIX + "SECRETS_DIR"
#: Prefixed names that are not configuration keys (no key of the model may be called like them).
RESERVED_VARIABLES = frozenset({CONFIG_VARIABLE, SECRETS_DIR_VARIABLE})


#: How messages name the configuration file when there is none.
NO_FILE = "(no file)"


class ConfigError(Exception):
    """The configuration is unusable; the message names the file, the key and the problem."""


def variable_of(key: str) -> str:
    """`eventhub.connection_string` → `ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING`."""
    return ENV_PREFIX + key.upper().replace(".", ENV_NESTING)


@dataclass(frozen=True)
class Origin:
    """Where a value came from."""

    kind: Literal["default", "file", "environment", "file_variable", "secrets_dir"]
    path: str | None = None
    variable: str | None = None

    def __str__(self) -> str:
        if self.kind == "file":
            return f"file {self.path}"
        if self.kind == "environment":
            return f"environment variable {self.variable}"
        if self.kind == "file_variable":
            return f"file {self.path} named by {self.variable}"
        if self.kind == "secrets_dir":
            return f"secret file {self.path}"
        return "default"

    @property
    def outside_the_file(self) -> bool:
        """Set by the environment or a secret file (an error then says where, as the file is not to blame)."""
        return self.kind not in ("default", "file")



DEFAULT = Origin("default")


def secret_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """The dotted keys of the model whose values are secrets (`SecretStr` fields)."""
    keys = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(secret_keys(annotation, f"{prefix}{name}."))
        elif annotation is SecretStr or SecretStr in get_args(annotation):
            keys.append(prefix + name)
    return keys


# --- the YAML file -------------------------------------------------------------------------------


#: The largest configuration file read (a real one is a few KiB).
MAX_FILE_BYTES = 1024 * 1024
#: The most values a YAML document may hold once its aliases are counted as the copies they stand for
#: (a real configuration has about a hundred), and the deepest nesting: an "alias bomb" of a few
#: hundred bytes stands for billions of values, which any walk over the loaded data would expand.
MAX_VALUES = 100_000
MAX_DEPTH = 32


class _TooLarge(ValueError):
    """A YAML document past MAX_VALUES or MAX_DEPTH, or one that contains itself."""


def load_bounded_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, refused (`_TooLarge`) when it stands for more than MAX_VALUES values or
    nests deeper than MAX_DEPTH. PyYAML shares an anchored node among its aliases, so loading is linear
    in the text; `_count` visits each shared value once, so the check is too."""
    try:
        loaded = yaml.safe_load(text)
    except RecursionError:
        raise _TooLarge(f"nested more than {MAX_DEPTH} levels deep") from None
    _count(loaded, {}, 0)
    return loaded


def _count(value: object, counted: dict[int, int], depth: int) -> int:
    """How many values `value` stands for, aliases expanded (each shared value counted once, by id)."""
    if not isinstance(value, (dict, list)):
        return 1
    known = counted.get(id(value))
    if known is not None:
        if known < 0:
            raise _TooLarge("a value that contains itself (a recursive alias)")
        return known
    if depth >= MAX_DEPTH:
        raise _TooLarge(f"nested more than {MAX_DEPTH} levels deep")
    counted[id(value)] = -1
    total = 1
    for child in (value.values() if isinstance(value, dict) else value):
        total += _count(child, counted, depth + 1) + (1 if isinstance(value, dict) else 0)
        if total > MAX_VALUES:
            raise _TooLarge(f"more than {MAX_VALUES:,} values once its aliases (*name) are expanded")
    counted[id(value)] = total
    return total


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The file's top-level mapping (an empty file is an empty one); ConfigError naming the file."""
    source = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{source}: refused: larger than {MAX_FILE_BYTES // 1024} KiB (a configuration is a "
                              "few KiB)")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the configuration file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not valid YAML: not UTF-8 text (byte {exc.start + 1} of the file) "
                          "(the line is not shown: it may hold a secret)") from None
    try:
        loaded = load_bounded_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML{_yaml_problem(exc, text)}") from None
    except _TooLarge as exc:
        raise ConfigError(f"{source}: refused: the YAML holds {exc}; a configuration needs no such structure") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, not a {type(loaded).__name__}")
    return loaded


# A quoted part of a PyYAML problem (`found character '%' that cannot start any token`, an alias or a
# tag name) is text of the file: it is left out.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Where and what a YAML error is, never the text of the line: PyYAML's own message quotes the
    line (with a caret under the column), and a configuration line may hold a secret."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        where = f" at line {mark.line + 1}, column {mark.column + 1}"
    elif isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        where = f" at line {before.count(chr(10)) + 1}, column {exc.position - before.rfind(chr(10))}"
    else:
        where = ""
    if isinstance(exc, yaml.reader.ReaderError):
        problem = "a character that YAML does not allow (control character or invalid encoding)"
    elif "\\t" in (getattr(exc, "problem", None) or "") or (mark is not None and "\t" in _line(text, mark.line)):
        problem = "a tab character: YAML indents with spaces only (replace the tab with spaces)"
    else:
        problem = _QUOTED.sub("'...'", getattr(exc, "problem", None) or "syntax error")
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark is not mark:
            problem += (f" ({_QUOTED.sub(repr('...'), context)} that starts at line {context_mark.line + 1}, "
                        f"column {context_mark.column + 1})")
    return f"{where}: {problem} (the line is not shown: it may hold a secret)"


def _line(text: str, number: int) -> str:
    """Line `number` (from 0) of `text`, for a look at its characters (never printed)."""
    lines = text.split("\n", number + 1)
    return lines[number] if number < len(lines) else ""


class _YamlFile(YamlConfigSettingsSource):
    """pydantic-settings' YAML source, reading one file that must exist, with our error messages."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        self._path = path
        super().__init__(settings_cls, yaml_file=path)
        self.values: dict[str, Any] = {}

    # override: the base declares a staticmethod (called through self); this one needs the source's path.
    def _existing_files(self, files: ConfigFileSourceType | None) -> list[Path | Traversable]:  # type: ignore[override]
        return [self._path]  # a missing file is an error, not an empty configuration

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        return read_yaml_mapping(self._path)

    def __call__(self) -> dict[str, Any]:
        self.values = super().__call__()
        return self.values

    def origin(self, key: str) -> Origin:
        return Origin("file", path=str(self._path))


# --- the environment and secret files ------------------------------------------------------------


def _decode(value: str) -> Any:
    """Only lists (`[1, 5, 10]`) are parsed, as YAML. Scalars stay strings, which pydantic converts
    where the key is a number or a boolean; anything else is left for pydantic to reject by key."""
    if not value.lstrip().startswith("["):
        return value
    try:
        decoded = load_bounded_yaml(value)
    except (yaml.YAMLError, _TooLarge):  # left a string: pydantic refuses it by key
        return value
    return decoded if isinstance(decoded, list) else value


#: The variables Kubernetes gives every container for each Service of its namespace that exists when
#: the pod starts ("service links"), here those of a Service named `acs-sms-consumer[-suffix]`:
#: `ACS_SMS_CONSUMER_SERVICE_HOST`, `..._SERVICE_PORT[_<port name>]`, `ACS_SMS_CONSUMER_PORT=tcp://...`,
#: `..._PORT_9464_TCP[_PROTO|_PORT|_ADDR]`. They are not configuration, and must not be refused as
#: unknown keys (the deployment also sets enableServiceLinks: false, but other manifests may not).
_SERVICE_LINK = re.compile(r"(?:[a-z0-9_]+_)?(?:service_host|service_port(?:_[a-z0-9_]+)?|port_\d+_(?:tcp|udp|sctp)"
                           r"(?:_(?:proto|port|addr))?)")
#: `<SERVICE>_PORT` is one only with its value, e.g. `tcp://10.0.0.11:9464` (`ACS_SMS_CONSUMER_HTTP_PORT=1`
#: is a misspelt `HTTP__PORT`, reported).
_SERVICE_LINK_PORT = re.compile(r"(?:[a-z0-9_]+_)?port")
_SERVICE_LINK_PORT_VALUE = re.compile(r"(?:tcp|udp|sctp)://\S+:\d+")


def _is_service_link(rest: str, value: str) -> bool:
    return bool(_SERVICE_LINK.fullmatch(rest) or (_SERVICE_LINK_PORT.fullmatch(rest)
                                                  and _SERVICE_LINK_PORT_VALUE.fullmatch(value.strip())))


def _unknown_top_level(settings_cls: type[BaseModel], names: Mapping[str, str | None]) -> dict[str, Any]:
    """Prefixed names (lower-cased) whose first part is no key: data that validation reports as
    unknown keys. (pydantic-settings only looks for the names of known keys.)"""
    unknown: dict[str, Any] = {}
    for name, value in sorted(names.items()):
        if not name.startswith(ENV_PREFIX.lower()) or value is None or _is_service_link(name[len(ENV_PREFIX):], value):
            continue
        path = name[len(ENV_PREFIX):].split(ENV_NESTING)
        if not all(path) or path[0] in settings_cls.model_fields:
            continue
        target = unknown
        for part in path[:-1]:
            child = target.get(part)
            target = child if isinstance(child, dict) else target.setdefault(part, {})
        target[path[-1]] = _decode(value)
    return unknown


# The mixin below calls the environment source's __call__ through super(): mypy checks that call
# against EnvSettingsSource, the base of both classes that use it; at run time it adds no base of its own.
if TYPE_CHECKING:
    _SourceBase = EnvSettingsSource
else:
    _SourceBase = object


class _EnvironmentLike(_SourceBase):
    """What the environment and the secrets directory share (both are pydantic-settings'
    `EnvSettingsSource`s): values decoded as this service decodes them, unknown top-level names kept
    so that validation names them, and the values read kept for `origin`."""

    values: dict[str, Any]

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        return _decode(value)

    def __call__(self) -> dict[str, Any]:
        self.values = {**_unknown_top_level(self.settings_cls, self.env_vars), **super().__call__()}
        return self.values


class _Environment(_EnvironmentLike, EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (tests pass theirs)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str], skip: frozenset[str]) -> None:
        self._given = {name.lower(): value for name, value in environ.items()
                       if name.upper().startswith(ENV_PREFIX) and name.upper() not in skip and value.strip()}
        super().__init__(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTING)
        self.values: dict[str, Any] = {}

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._given

    def origin(self, key: str) -> Origin:
        return Origin("environment", variable=variable_of(key))


class _FileVariables(PydanticBaseSettingsSource):
    """`ACS_SMS_CONSUMER_<KEY>_FILE=<path>` for the secret keys: the file's content, stripped, is the
    value (the convention of the official container images for secrets mounted as files)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str], keys: list[str]) -> None:
        super().__init__(settings_cls)
        self.values: dict[str, Any] = {}
        self._paths: dict[str, str] = {}
        upper = {name.upper(): value for name, value in environ.items()}
        for key in keys:
            variable = variable_of(key)
            file_variable = variable + FILE_SUFFIX
            path = upper.get(file_variable, "").strip()
            if not path:
                continue
            if upper.get(variable, "").strip():
                raise ConfigError(f"{variable} and {file_variable} are both set: set only one of them "
                                  "(the value, or the path of a file that holds it)")
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{file_variable}: cannot read {path}: {exc.strerror or exc}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"{file_variable}: {path} is not UTF-8 text") from None
            section, _, name = key.rpartition(".")
            target = self.values
            for part in filter(None, section.split(".")):
                target = target.setdefault(part, {})
            target[name] = text.strip()
            self._paths[key] = path

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ gives the values

    def __call__(self) -> dict[str, Any]:
        return self.values

    def origin(self, key: str) -> Origin:
        return Origin("file_variable", path=self._paths[key], variable=variable_of(key) + FILE_SUFFIX)


class _SecretsDirectory(_EnvironmentLike, NestedSecretsSettingsSource):
    """pydantic-settings' nested secrets source: a file per key, named like its environment variable."""

    def __init__(self, settings_cls: type[BaseSettings], directory: Path) -> None:
        self._files: dict[str, Path] = {}
        super().__init__(SecretsSettingsSource(settings_cls), secrets_dir=directory, secrets_dir_missing="error",
                         secrets_case_sensitive=False, secrets_prefix=ENV_PREFIX, secrets_nested_delimiter=ENV_NESTING)
        self.values: dict[str, Any] = {}

    # override: the base declares a classmethod (called through self); this one records each value's file.
    def load_secrets(self, path: Path) -> dict[str, str]:  # type: ignore[override]
        try:
            secrets = super().load_secrets(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"secrets directory {path}: {_unreadable(path, exc)}") from None
        self._files.update({name.lower(): path / name for name in secrets})
        return secrets

    def origin(self, key: str) -> Origin:
        name = variable_of(key).lower()
        return Origin("secrets_dir", path=str(self._files.get(name, Path(str(self.secrets_dir)) / variable_of(key))))


def _unreadable(directory: Path, exc: Exception) -> str:
    """Which file of the directory could not be read, and why; never its content."""
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot read {Path(exc.filename).name}: {exc.strerror or exc}"
    for file in sorted(directory.iterdir()):
        if file.name.startswith(".") or not file.is_file():
            continue
        try:
            file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            return f"{file.name} is not UTF-8 text"
        except OSError as error:
            return f"cannot read {file.name}: {error.strerror or error}"
    return f"cannot read a file: {type(exc).__name__}"


# --- loading -------------------------------------------------------------------------------------

S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True)
class Loaded(Generic[S]):
    """Validated settings, and where each value came from."""

    settings: S
    #: Every dotted key a source set → its origin (keys absent here have their default).
    origins: dict[str, Origin]
    config_file: str | None
    secrets_dir: str | None

    def origin(self, key: str) -> Origin:
        return _lookup(self.origins, key) or DEFAULT


#: The sources a configuration is read from: each keeps the values it read and says where each came from.
_Source = _Environment | _FileVariables | _SecretsDirectory | _YamlFile


def load(settings_cls: type[S], path: str | Path | None, environ: Mapping[str, str] | None = None,
         secrets_dir: str | Path | None = None) -> Loaded[S]:
    """Read the sources (see the module's docstring), validate. Raises ConfigError.

    `environ` defaults to os.environ; `secrets_dir` to ACS_SMS_CONSUMER_SECRETS_DIR of `environ`."""
    environ = os.environ if environ is None else environ
    source = str(path) if path is not None else NO_FILE
    if secrets_dir is None:
        secrets_dir = environ.get(SECRETS_DIR_VARIABLE, "").strip() or None
    keys = secret_keys(settings_cls)
    skip = RESERVED_VARIABLES | {variable_of(key) + FILE_SUFFIX for key in keys}
    try:
        sources: list[_Source] = [_Environment(settings_cls, environ, skip),
                                  _FileVariables(settings_cls, environ, keys)]
        if secrets_dir is not None:
            directory = Path(secrets_dir)
            if not directory.is_dir():
                what = "not a directory" if directory.exists() else "no such directory"
                raise ConfigError(f"secrets directory {directory}: {what} (--secrets-dir or {SECRETS_DIR_VARIABLE})")
            sources.append(_SecretsDirectory(settings_cls, directory))
        if path is not None:
            sources.append(_YamlFile(settings_cls, Path(path)))
        settings = settings_cls(_build_sources=(tuple(sources), {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, _origins(sources), settings_cls)) from None
    except SettingsError as exc:  # e.g. a secrets directory of more than 16 MiB
        raise ConfigError(f"{source}: {exc}") from None
    return Loaded(settings, _origins(sources), None if path is None else str(path),
                  None if secrets_dir is None else str(secrets_dir))


def _leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for name, value in data.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{name}.")
        else:
            yield prefix + str(name)


def _origins(sources: list[_Source]) -> dict[str, Origin]:
    origins: dict[str, Origin] = {}
    for source in reversed(sources):  # lowest precedence first: higher ones overwrite
        for key in _leaves(source.values):
            origins[key] = source.origin(key)
    return origins


def _lookup(origins: Mapping[str, Origin], key: str) -> Origin | None:
    """The origin of `key`, or of the enclosing key that a source set whole (a list's items)."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        if (origin := origins.get(".".join(parts[:end]))) is not None:
            return origin
    return None


_DOTTED_KEY = re.compile(r"\b[a-z_]+(?:\.[a-z_]+)+\b")


def _where(key: str, message: str, origins: Mapping[str, Origin]) -> str:
    """Where a problem's value came from, when it is not the file: the key's own origin, or for a
    problem of a section (`eventhub: eventhub.connection_string has ...`) those of the keys it names."""
    origin = _lookup(origins, key)
    if origin is not None:
        return f" (from {origin})" if origin.outside_the_file else ""
    named = []
    for mentioned in dict.fromkeys(_DOTTED_KEY.findall(message)):
        origin = origins.get(mentioned)
        if origin is not None and origin.outside_the_file:
            named.append(f"{mentioned} from {origin}")
    return f" ({'; '.join(named)})" if named else ""


def _describe(exc: ValidationError, source: str, origins: Mapping[str, Origin], model: type[BaseModel]) -> str:
    """Every problem on a line of its own: the key, what is wrong and how to fix it, where the value came
    from when not the file; never the value. When every problem comes from the environment or secret
    files, the headline says the file is not to blame."""
    lines, from_outside = [], []
    for error in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            message = f"is not a known key ({_unknown_key_hint(key, _lookup(origins, key), model)})"
        elif error["type"] == "missing":
            message = "is required"
        else:
            message = error["msg"].removeprefix("Value error, ")
        where = _where(key, message, origins)
        from_outside.append(bool(where))
        lines.append(f"  {key}: {message}{where}")
    count = f"{len(lines)} problem{'s' if len(lines) > 1 else ''}"
    if all(from_outside) and source != NO_FILE:
        head = f"invalid configuration ({count}, from the environment or secret files; none in {source}):"
    else:
        head = f"{source}: invalid configuration ({count}):"
    return "\n".join([head, *lines])


def model_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of the model, sections included (`eventhub`, `eventhub.name`, ...)."""
    keys = []
    for name, info in model.model_fields.items():
        keys.append(prefix + name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            keys.extend(model_keys(info.annotation, f"{prefix}{name}."))
    return keys


#: Longer unknown names get no "did you mean" (difflib's cost grows with the product of the lengths).
_MAX_HINTED_NAME = 64


def _unknown_key_hint(key: str, origin: Origin | None, model: type[BaseModel]) -> str:
    """How to fix an unknown key: the variable meant when one `_` stands for `__`, the section where a
    key of that name belongs (a key indented at the wrong level), a near miss among its siblings."""
    known = model_keys(model)
    named = origin is not None and origin.kind in ("environment", "secrets_dir")  # by a variable's name
    if named:
        squashed = variable_of(key).replace(ENV_NESTING, "_")
        meant = [variable_of(k) for k in known if variable_of(k).replace(ENV_NESTING, "_") == squashed]
        if meant:
            return f"did you mean {meant[0]}? Nesting levels are separated by two underscores, {ENV_NESTING}"
    show = variable_of if named else str
    *section, leaf = key.split(".")
    elsewhere = [show(k) for k in known if k.rpartition(".")[2] == leaf and k != key]
    if elsewhere:
        return f"it belongs in another section: {' or '.join(elsewhere)}" + ("" if named else "; check its indentation")
    prefix = ".".join(section) + "." if section else ""
    siblings = [k.removeprefix(prefix) for k in known if k.startswith(prefix) and "." not in k.removeprefix(prefix)]
    close = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.7) if len(leaf) <= _MAX_HINTED_NAME else []
    if close:
        return f"did you mean {show(prefix + close[0])}?"
    return "check the spelling against config.example.yaml"


# --- check-config's listing ----------------------------------------------------------------------


def annotated_yaml(plain: Mapping[str, Any], loaded: Loaded[Any]) -> str:
    """`plain` (the redacted settings) as YAML, each value followed by a comment naming its origin."""
    rows: list[tuple[str, str | None]] = []

    def walk(data: Mapping[str, Any], prefix: str, indent: str) -> None:
        for name, value in data.items():
            if isinstance(value, Mapping) and value:
                rows.append((f"{indent}{name}:", None))
                walk(value, f"{prefix}{name}.", indent + "  ")
            else:
                shown = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).removesuffix("...\n").strip()
                rows.append((f"{indent}{name}: {shown}", str(loaded.origin(prefix + name))))

    walk(plain, "", "")
    column = min(max(len(text) for text, origin in rows if origin is not None) + 2, 56)
    header = [
        "# The effective configuration, secrets as ***. After each value, where it came from; precedence,",
        "# highest first: environment variable (or a file named by a *_FILE variable), secrets directory,",
        "# configuration file, default.",
        f"# configuration file: {loaded.config_file or 'none'}",
        f"# secrets directory: {loaded.secrets_dir or 'none'}",
    ]
    body = [text if origin is None else f"{text.ljust(column - 2)}  # {origin}" for text, origin in rows]
    return "\n".join(header + body) + "\n"
