"""The settings: pipeline/default_config.yaml (the defaults, each documented there) with the
operator's `--config FILE` merged over it, validated once into a frozen, typed `Settings`.

Every value is checked when the file is loaded, before a command opens a store or takes its lock:
a wrong one is exit 2 with one line naming the file and the dotted key, never an error in the
middle of a night. The model gives no defaults of its own: the YAML is their one home.

>>> from_mapping({"store": {"lock_wait_seconds": "soon"}}, "my.yaml")
Traceback (most recent call last):
...
pipeline.errors.ConfigError: my.yaml: store.lock_wait_seconds: must be a number >= 0 (got 'soon')
>>> load().lock_wait
3600.0
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WrapValidator,
                      model_validator)
from pydantic import GetCoreSchemaHandler, StrictBool, StrictFloat, StrictInt, StrictStr
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from pipeline.errors import ConfigError

DEFAULTS_FILE = "default_config.yaml"

# settings of earlier versions that no longer do anything: accepted (an operator's file keeps
# working after an upgrade) and ignored
RETIRED = {"contact_index.recent_rows_warning", "contact_index.auto_compact"}
# sections whose keys are the operator's own choosing (columns, rules, years, Spark settings)
OPEN = ("aliases", "years", "severity", "null_rates", "value_sets", "rule_failure_pct", "conf")
# the columns scope.identifier_guard may name
GUARDABLE = ("policy_no", "branch", "channel", "agent_code", "product_code")


# ---- the value types: each says what it must be, in the words the error line uses ----------------

class FrozenDict(dict):
    """A mapping setting (aliases, severity, null rates, ...): a dict that cannot change and hashes,
    so the Settings holding it are hashable; it pickles as a plain dict would."""

    def _frozen(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("settings are read-only")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _frozen

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def must(what: str, test: Callable[[Any], bool] | None = None) -> WrapValidator:
    """A value that is not `what` (pydantic's check, then `test`) is the error `must be <what> (got ...)`."""

    return WrapValidator(_checker(what, test))


def _checker(what: str, test: Callable[[Any], bool] | None = None) -> Callable[[Any, Callable[[Any], Any]], Any]:
    def check(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            out = handler(value)
        except ValidationError:
            out = None
        else:
            if test is None or test(out):
                return out
        raise PydanticCustomError("custdq", "must be {what} (got {got})", {"what": what, "got": _shown(value)})

    check.what = what  # type: ignore[attr-defined]  # what `accepted` says of the setting
    return check


@dataclass(frozen=True)
class Whole:
    """A YAML integer (not true/false, not "10", not 2.5) in low..high; `null` also, if `null`."""

    low: int
    high: int | None = None
    what: str = "a whole number"
    null: bool = False

    @property
    def words(self) -> str:
        words = f"{self.what} {self.low}..{self.high}" if self.high is not None else f"{self.what}, at least {self.low}"
        return words + (", or null" if self.null else "")

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        inner = core_schema.int_schema(strict=True, ge=self.low, le=self.high)
        return core_schema.no_info_wrap_validator_function(
            _checker(self.words), core_schema.nullable_schema(inner) if self.null else inner)


@dataclass(frozen=True)
class Number:
    """A YAML number, an integer or a decimal (not true/false, not "10", not .nan or .inf), at
    least `low` (above it, if `above`), at most `high`."""

    low: float
    high: float | None = None
    above: bool = False
    what: str | None = None

    @property
    def words(self) -> str:
        return self.what or (f"a number {'>' if self.above else '>='} {self.low:g}"
                             + (f" and <= {self.high:g}" if self.high is not None else ""))

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        inner = core_schema.float_schema(strict=True, allow_inf_nan=False, le=self.high,
                                         gt=self.low if self.above else None, ge=None if self.above else self.low)
        return core_schema.no_info_wrap_validator_function(_checker(self.words), inner)


def _web_number(low: float, high: float, above: bool = True) -> Number:
    return Number(low, high, above, f"a number {'above' if above else 'at least'} {low:g}, at most {high:g}")


Flag = Annotated[bool, Field(strict=True), must("true or false")]
Text = Annotated[str, Field(strict=True), must("a text value", lambda v: bool(v.strip()))]
def _blank_is_null(value: Any) -> Any:
    """An empty or blank value of an optional setting means "not set", as the defaults' comments
    say ("Empty: ..."), the same as null."""
    return None if isinstance(value, str) and not value.strip() else value


MaybePath = Annotated[StrictStr | None, BeforeValidator(_blank_is_null), must("null or a path")]
MaybeText = Annotated[StrictStr | None, BeforeValidator(_blank_is_null), must("null or a text value")]
Texts = Annotated[tuple[Annotated[str, Field(strict=True)], ...],
                  must("a list of text values (quote codes such as '01' and numbers)")]
Days = Annotated[int, Whole(1, what="a whole number of days")]
Share = Annotated[float, Number(0, 1, what="a share 0..1")]
Percent = Annotated[float, Number(0, 100, what="a percentage 0..100")]
Ratio = Annotated[float, Number(0, above=True)]
Setting = Annotated[StrictStr | StrictInt | StrictFloat | StrictBool, must("a text, number or true/false value")]

# a DuckDB memory size, as its memory_limit setting reads one
_SIZE = re.compile(r"\d+(\.\d+)?\s*(b|bytes?|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)", re.IGNORECASE)
Size = Annotated[str, Field(strict=True), must("a size such as 256MB or 2GB", lambda v: bool(_SIZE.fullmatch(v.strip())))]


def _day(value: Any) -> Any:
    """A calendar day: YAML's unquoted 2027-01-01 (a date) or the text "2027-01-01"."""
    if isinstance(value, dt.datetime) or not isinstance(value, (dt.date, str)):
        raise PydanticCustomError("custdq", "must be a date YYYY-MM-DD (got {got})", {"got": _shown(value)})
    try:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("custdq", "must be a real date YYYY-MM-DD (got {got})", {"got": _shown(value)}) from None


_day.what = "a date YYYY-MM-DD"  # type: ignore[attr-defined]  # what `accepted` says of it
Day = Annotated[dt.date, BeforeValidator(_day)]


def _frozen(value: Mapping) -> FrozenDict:
    return FrozenDict(value)


def _rule_codes() -> set[str]:
    from checks.catalogue import RULES  # the rules' one home (imported when a file names a rule)

    return set(RULES)


def _known_rules(codes: Any) -> Any:
    unknown = sorted(set(codes) - _rule_codes())
    if unknown:
        raise PydanticCustomError("custdq", "unknown rule code {codes} (docs/rules.md lists them)",
                                  {"codes": ", ".join(unknown)})
    return codes


def _known_rules_or_default(codes: Any) -> Any:
    unknown = sorted(set(codes) - _rule_codes() - {"default"})
    if unknown:
        raise PydanticCustomError("custdq", "unknown rule code {codes} (docs/rules.md lists them)",
                                  {"codes": ", ".join(unknown)})
    return codes


class Section(BaseModel):
    """A section of settings: frozen, and every key known."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ---- the sections -----------------------------------------------------------------------------------

class PhonePlaceholders(Section):
    numbers: Annotated[Texts, must("a list of numbers in quotes", lambda v: all(n.strip().isdigit() for n in v))]
    repeated_digit: Flag
    consecutive_runs: Flag


def _guardable(columns: tuple[str, ...]) -> bool:
    return set(columns) <= set(GUARDABLE)


class Scope(Section):
    min_coverage_years: Annotated[float, Number(0)]
    unreadable_term_in_scope: Flag
    identifier_guard: Annotated[Texts, must(f"a list of columns among {', '.join(GUARDABLE)}", _guardable)]


class Deadlines(Section):
    cooling_off_days: Annotated[int, Whole(0, 3650, "a whole number of days")]
    channel_working_days: Annotated[int, Whole(0, 365, "a whole number of working days")]
    list_working_days: Annotated[int, Whole(0, 365, "a whole number of working days")]


class CalendarYear(Section):
    """A year the chinese-calendar package does not cover (an operator's entry: only `source` is
    required, the State Council notice the days were taken from)."""

    source: Text
    holidays: tuple[Day, ...] = ()
    workdays: tuple[Day, ...] = ()


def _in_their_year(years: Mapping[int, CalendarYear]) -> Mapping[int, CalendarYear]:
    """A day listed under another year would be silently ignored (pipeline.calendar looks a day up by its year)."""
    for year, spec in years.items():
        wrong = [d for d in (*spec.holidays, *spec.workdays) if d.year != year]
        if wrong:
            raise PydanticCustomError("custdq", f"{year}: {wrong[0].isoformat()} is not in {year}")
    return years


def _year(value: Any) -> Any:
    """A year as YAML reads it (2027) or quoted ("2027")."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


Year = Annotated[int, Whole(1900, 2200, "a year"), BeforeValidator(_year)]


class CalendarYears(Section):
    years: Annotated[Mapping[Year, CalendarYear], AfterValidator(_in_their_year), AfterValidator(_frozen)]


Severity = Annotated[Literal["error", "warning"], must("error or warning")]


class Complaints(Section):
    threshold: Annotated[int, Whole(1, 100, "a whole number of complaints")]
    window_days: Annotated[int, Whole(1, 3660, "a whole number of days")]
    types: Texts


# the 处理结果 that settle an item (pipeline.cases.disposition.CLOSING's keys; a test holds them
# equal): the ones a review may be asked for
SETTLING_RESULTS = ("已更正", "核实无误", "虚假资料")


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def _settling(value: tuple[str, ...]) -> tuple[str, ...]:
    wrong = [v for v in value if v not in SETTLING_RESULTS]
    if wrong:
        raise PydanticCustomError("custdq", "{got} settles no item: only {ok} may need a review",
                                  {"got": _shown(wrong[0]), "ok": " / ".join(SETTLING_RESULTS)})
    return value


class Smtp(Section):
    host: MaybeText
    port: Annotated[int, Whole(1, 65535)]
    starttls: Flag
    user: MaybeText
    password_env: MaybeText
    sender: Annotated[str, Field(strict=True), must("an e-mail address", lambda v: bool(_EMAIL.fullmatch(v)))]
    timeout_seconds: Annotated[float, Number(0, 600, above=True)]


class Notify(Section):
    base_url: MaybeText
    due_within_days: Annotated[int, Whole(0, 365, "a whole number of days")]
    smtp: Smtp


class Evidence(Section):
    max_bytes: Annotated[int, Whole(1024, 100 * 2**20, "a whole number of bytes (1 KiB to 100 MiB)")]
    max_files: Annotated[int, Whole(1, 100, "a whole number of files")]


class Review(Section):
    results: Annotated[Texts, AfterValidator(_settling)]


class Rules(Section):
    disabled: Annotated[Texts, AfterValidator(_known_rules)]
    severity: Annotated[Mapping[str, Severity], AfterValidator(_known_rules), AfterValidator(_frozen)]
    complaints: Complaints


class Spark(Section):
    master: MaybeText  # null: what spark-submit or spark-defaults.conf says
    app_name: Text
    staging: MaybePath
    conf: Annotated[Mapping[Annotated[str, Field(strict=True)], Setting], AfterValidator(_frozen)]


class ContactIndex(Section):
    path: MaybePath
    memory_limit: Size
    temp_directory: MaybePath
    threads: Annotated[int | None, Whole(1, 1024, "a whole number of threads", null=True)]

    @property
    def thread_count(self) -> int:
        """DuckDB's threads: `threads`, else the cores, at most 4."""
        return self.threads or min(os.cpu_count() or 1, 4)


class ClosedItemsDays(Section):
    corrected: Days
    legitimate: Days
    resolved: Days
    false_information: Days


class Retention(Section):
    closed_items_days: ClosedItemsDays
    contacts_days: Days
    runs_days: Days
    access_log_days: Days
    complaints_days: Days


class Store(Section):
    url: MaybeText
    lock_wait_seconds: Annotated[float, Number(0)]
    undo_nights: Annotated[int, Whole(1, what="a whole number of nights")]


class Volume(Section):
    nights: Annotated[int, Whole(1, 366, "a whole number of nights")]
    min_ratio: Ratio
    max_ratio: Ratio

    @model_validator(mode="after")
    def _ordered(self) -> Volume:
        if self.min_ratio > self.max_ratio:
            raise PydanticCustomError("custdq", f"min_ratio ({self.min_ratio:g}) is above max_ratio ({self.max_ratio:g})")
        return self


_FAMILIES = ("null_rate", "value_set", "rule_failure")


def _expectation_names(names: tuple[str, ...]) -> bool:
    return all(n in ("volume", "unique_policy_no", *_FAMILIES) or n.split(":")[0] in _FAMILIES for n in names)


class Expectations(Section):
    enabled: Flag
    volume: Volume
    null_rates: Annotated[Mapping[Annotated[str, Field(strict=True)], Share], AfterValidator(_frozen)]
    value_sets: Annotated[Mapping[Annotated[str, Field(strict=True)], Texts], AfterValidator(_frozen)]
    rule_failure_pct: Annotated[Mapping[Annotated[str, Field(strict=True)], Percent],
                                AfterValidator(_known_rules_or_default), AfterValidator(_frozen)]
    blocking: Annotated[Texts, must("a list of expectation names: volume, unique_policy_no, a family (null_rate, "
                                    "value_set, rule_failure) or one of them (null_rate:branch)", _expectation_names)]

    @model_validator(mode="after")
    def _blocking_names_the_suite(self) -> Expectations:
        """A blocking name the suite will never evaluate would block nothing, silently: each
        `null_rate:X` and `value_set:X` must name a key of null_rates / value_sets, each
        `rule_failure:X` a rule of the catalogue."""
        known = {"null_rate": set(self.null_rates), "value_set": set(self.value_sets), "rule_failure": _rule_codes()}
        for name in self.blocking:
            family, _, what = name.partition(":")
            if what and what not in known.get(family, set()):
                where = {"null_rate": "expectations.null_rates", "value_set": "expectations.value_sets"}.get(
                    family, "the rule catalogue")
                raise PydanticCustomError("custdq", "blocking: {name} names no expectation of the suite ({what} is not "
                                          "in {where})", {"name": name, "what": what, "where": where})
        return self

# ---- web: (`custdq serve`) --------------------------------------------------------------------------

_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")  # an HTTP header's name, as a proxy would set it
_HOST = re.compile(r"[A-Za-z0-9.:\-\[\]]{1,255}")  # a name or an address to listen on
# headers a client or the HTTP machinery sets: never the name a proxy gives the signed-in user in
_OWN_HEADERS = frozenset({"host", "cookie", "authorization", "content-length", "content-type", "transfer-encoding",
                          "connection", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded",
                          "user-agent", "referer", "origin", "accept", "upgrade", "te", "expect", "x-real-ip",
                          "x-forwarded-port", "x-forwarded-prefix"})


def _host(host: str) -> str:
    host = host.strip("[]")  # uvicorn binds ::1, not [::1]
    if re.fullmatch(r"[0-9.]+", host) or ":" in host:  # an address: one uvicorn can bind
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise PydanticCustomError("custdq", "{host} is not an IP address", {"host": repr(host)}) from None
    return host


def _user_header(header: str | None) -> str | None:
    if header is not None and (header.lower() in _OWN_HEADERS or header.lower().startswith(("proxy-", "sec-"))):
        raise PydanticCustomError("custdq", "{header} is a header clients and HTTP itself set, not one a "
                                  "single-sign-on proxy adds (e.g. X-Remote-User)", {"header": header})
    return header


def _proxies(value: Any) -> Any:
    """web.trusted_proxies: addresses and networks as uvicorn reads them (an entry it could not
    read would silently trust nothing, or "*" everyone)."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise PydanticCustomError("custdq", "must be a list of addresses or networks, e.g. [127.0.0.1] (got {got})",
                                  {"got": _shown(value)})
    for v in value:
        try:
            ipaddress.ip_network(v) if "/" in v else ipaddress.ip_address(v)
        except ValueError:
            raise PydanticCustomError("custdq", "{v} is not an IP address or network (e.g. 10.0.8.0/24)",
                                      {"v": repr(v)}) from None
    return tuple(value)


class Web(Section):
    """`custdq serve`'s settings, the same in every worker process."""

    host: Annotated[str, Field(strict=True), must("an address", lambda v: bool(_HOST.fullmatch(v))),
                    AfterValidator(_host)]
    port: Annotated[int, Whole(1, 65535)]
    workers: Annotated[int, Whole(1, 64)]
    session_idle_minutes: Annotated[float, _web_number(0, 60 * 24 * 30)]
    session_max_hours: Annotated[float, _web_number(0, 24 * 365)]
    login_failures: Annotated[int, Whole(1, 1000)]
    lockout_minutes: Annotated[float, _web_number(0, 60 * 24 * 365, above=False)]
    login_checks: Annotated[int, Whole(1, 16)]  # password checks at once, per process: 64 MiB each
    login_queue: Annotated[int, Whole(0, 10_000)]  # logins that may wait for one
    login_per_address: Annotated[int, Whole(1, 10**6)]
    login_per_user: Annotated[int, Whole(1, 10**6)]
    login_window_seconds: Annotated[float, _web_number(0, 10**6)]
    session_key_file: MaybePath
    https_only: Flag
    trusted_user_header: Annotated[StrictStr | None,
                                   must("null or a header name", lambda v: v is None or bool(_HEADER.fullmatch(v))),
                                   AfterValidator(_user_header)]
    trusted_proxies: Annotated[tuple[str, ...], BeforeValidator(_proxies)]
    lock_wait_seconds: Annotated[float, _web_number(0, 3600, above=False)]
    page_size: Annotated[int, Whole(1, 1000)]
    count_limit: Annotated[int, Whole(1, 10**9)]

    @property
    def session_idle_seconds(self) -> float:
        return float(self.session_idle_minutes) * 60

    @property
    def session_max_seconds(self) -> float:
        return float(self.session_max_hours) * 3600

    @property
    def lockout_seconds(self) -> float:
        return float(self.lockout_minutes) * 60


# ---- the whole -----------------------------------------------------------------------------------

class Settings(Section):
    """Every setting of pipeline/default_config.yaml, checked; frozen, hashable and picklable (a
    Spark task and the expectations gate's process receive it)."""

    aliases: Annotated[Mapping[Annotated[str, Field(strict=True)], Texts], AfterValidator(_frozen)]
    placeholders: Texts
    self_relation: Texts
    id_card_types: Texts
    residence_permit_types: Texts
    foreign_permanent_types: Texts
    phone_placeholders: PhonePlaceholders
    scope: Scope
    minor_age: Annotated[int, Whole(0, 150, "a whole number of years")]
    deadlines: Deadlines
    calendar: CalendarYears
    rules: Rules
    hash_key_file: MaybePath
    chunk_rows: Annotated[int, Whole(1, what="a whole number of rows")]
    workers: Annotated[int | None, Whole(1, what="a whole number of processes", null=True)]
    spark: Spark
    contact_index: ContactIndex
    retention: Retention
    store: Store
    expectations: Expectations
    web: Web
    review: Review
    notify: Notify
    evidence: Evidence

    @property
    def lock_wait(self) -> float:
        """Seconds a writer waits for the case store's writer lock (store.lock_wait_seconds)."""
        return float(self.store.lock_wait_seconds)

    @property
    def worker_processes(self) -> int:
        """`workers`: processes checking chunks side by side (null: one per core)."""
        return self.workers if self.workers is not None else max(1, os.cpu_count() or 1)


# ---- loading -------------------------------------------------------------------------------------

def defaults() -> dict[str, Any]:
    """The packaged defaults as YAML reads them (a fresh copy: a caller may change it)."""
    text = resources.files("pipeline").joinpath(DEFAULTS_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def merge(base: dict[str, Any], override: dict[str, Any], where: str = "") -> dict[str, Any]:
    """`override` over `base`, key by key: an unknown key is an error, a retired one is ignored, an
    OPEN section takes keys of the operator's own choosing."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if f"{where}{key}" in RETIRED:
            continue
        if key not in base:
            raise ConfigError(f"unknown setting '{where}{key}'")
        if isinstance(base[key], dict) and not isinstance(value, dict):  # `web:` with nothing under it too
            raise ConfigError(f"setting '{where}{key}' must be a section of settings (it is {value!r}); "
                              "leave it out to keep its defaults")
        if isinstance(base[key], dict) and isinstance(value, dict) and key in OPEN:
            out[key] = {**base[key], **value}  # keys of the operator's own choosing (columns, rules, years)
        elif isinstance(base[key], dict) and isinstance(value, dict):
            out[key] = merge(base[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


# what a setting an operator must write says when it is left out
MISSING_HINTS = {"source": "name the State Council notice the days were taken from (never from memory), "
                           "e.g. source: \"国务院办公厅关于2027年部分节假日安排的通知\""}


def _line(error: Any) -> str:
    """One pydantic error as `dotted.key: what is wrong`."""
    key = ".".join(str(part) for part in error["loc"])
    kind, got = error["type"], _shown(error.get("input"))
    if kind == "custdq":
        what = error["msg"]
    elif kind == "extra_forbidden":
        return f"unknown setting '{key}'"
    elif kind == "missing":
        hint = MISSING_HINTS.get(str(error["loc"][-1]))
        what = f"missing: {hint}" if hint else "missing"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        what = f"must be a section of settings (got {got})"
    else:
        msg = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        what = f"{msg[:1].lower()}{msg[1:]} (got {got})"
    return f"{key}: {what}" if key else what


def validated(merged: Mapping[str, Any], where: str) -> Settings:
    """The merged mapping as Settings; a bad value is a ConfigError `<where>: <dotted key>: <what>`."""
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{where}: {_line(errors[0])}{more}") from None


def from_mapping(user: Mapping[str, Any], where: str = "settings") -> Settings:
    """Settings of a mapping written as a config file would be (merged over the defaults)."""
    try:
        merged = merge(defaults(), dict(user))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return validated(merged, where)


def load(path: str | Path | None = None) -> Settings:
    """The settings: the defaults, with the file at `path` merged over them, checked."""
    if path is None:
        return validated(defaults(), DEFAULTS_FILE)
    p = Path(path)
    try:
        user = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{p}: unreadable config file ({first})") from None
    if not isinstance(user, dict):
        raise ConfigError(f"{p}: config file must be a mapping of settings")
    return from_mapping(user, str(p))


# ---- what each setting accepts (docs/configuration.md, generated by cog) -------------------------

def _says(tp: Any) -> str:
    """What a setting's type accepts, in the words its error message uses."""
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        for m in reversed(meta):  # the outermost check speaks for the value
            if isinstance(m, (Whole, Number)):
                return m.words
            what = getattr(getattr(m, "func", None), "what", None)
            if what:
                return str(what)
        return _says(base)
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Mapping, dict):
        return f"a mapping, each value {_says(args[1])}"
    if origin is tuple:
        return f"a list, each {_says(args[0])}"
    if origin is Literal:
        return " or ".join(map(str, args))
    if args and type(None) in args:
        return " or ".join(_says(a) for a in args if a is not type(None)) + ", or null"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a text value"}.get(tp, str(tp))


def accepted(model: type[BaseModel] = None, prefix: str = "") -> list[tuple[str, str]]:  # type: ignore[assignment]
    """(dotted key, what it accepts) of every setting, in the model's order: the table of
    docs/configuration.md. The checks across settings (min_ratio <= max_ratio, the blocking
    names, a calendar year's days) are the sections' own validators, said in the page's text."""
    out: list[tuple[str, str]] = []
    for name, field in (model or Settings).model_fields.items():
        tp = field.annotation
        key = f"{prefix}{name}"
        if isinstance(tp, type) and issubclass(tp, Section):
            out += accepted(tp, f"{key}.")
            continue
        inner = get_args(tp)[0] if get_origin(tp) is Annotated else tp
        values = get_args(inner)[1] if get_origin(inner) in (Mapping, dict) else None
        values = get_args(values)[0] if get_origin(values) is Annotated else values
        if isinstance(values, type) and issubclass(values, Section):  # calendar.years: a section per year
            out += accepted(values, f"{key}.<year>.")
            continue
        says = _says(Annotated[tp, *field.metadata]) if field.metadata else _says(tp)
        out.append((key, says))
    return out
