"""Scenario loading: the happy path, and the exact message of every error kind."""

import pickle
import sys
import textwrap

import pytest

from engine import Actor, Kernel
from runtime.scenario import Override, ScenarioError, load_scenario, parse_duration

MODEL = """
from engine import Actor


class Shop(Actor):
    pass


class Customer(Actor):
    def __init__(self, shop, budget=10):
        self.shop = shop
        self.budget = budget


class Node(Actor):
    def __init__(self, peers=(), **extra):
        self.peers = list(peers)


class Ring(Actor):
    def __init__(self, next_node, hops=0):
        self.next_node = next_node
        self.hops = hops
        self.seen = 0

    def on_first_diasca(self):
        if self.hops:
            self.send(self.next_node, "token", self.hops)

    def token(self, sender, left):
        self.seen += 1
        if left > 1:
            self.send(self.next_node, "token", left - 1)


class Heavy(Actor):
    weight = 5


class Broken(Actor):
    weight = -1


class Plain:
    pass


def helper():
    pass
"""

SIM = "[simulation]\n"
SHOP = '[[actors]]\nclass = "model.py:Shop"\n'
CUSTOMER = '[[actors]]\nclass = "model.py:Customer"\n'
DURATION_HELP = (
    'expected a number of seconds or a duration such as "90s", "15min" or "1h30min" '
    "(units: ms, s, min, h, d, w)"
)


@pytest.fixture
def write(tmp_path):
    """Write a scenario (and model.py, broken.py) into tmp_path; return its path."""
    (tmp_path / "model.py").write_text(MODEL)
    (tmp_path / "broken.py").write_text("from engine import Actor\n\nx = 1 / 0\n")

    def write(text, name="s.toml"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return write


def message(path, overrides=()):
    """The one-line message load_scenario gives for a bad scenario."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path), overrides)
    text = str(info.value)
    assert "\n" not in text
    return text


# --- errors: exact messages --------------------------------------------------

SHOP_AT = '[[actors]] #1 (class "model.py:Shop")'
CUSTOMER_AT = '[[actors]] #1 (class "model.py:Customer")'

ERRORS = {
    "unknown section": (
        SIM + SHOP + "[simulaton]\nname = 'x'\n",
        "[simulaton]: unknown section; did you mean [simulation]? "
        "known sections: [simulation], [[actors]], [results], "
        "[deployment], [placement], [[populations]], [checkpoint]",
    ),
    "unknown top-level key": (
        "seed = 1\n" + SIM + SHOP,
        "seed: unknown section; known sections: [simulation], [[actors]], [results], "
        "[deployment], [placement], [[populations]], [checkpoint]",
    ),
    "unknown key in [simulation]": (
        "[simulation]\ntick_durtion = 1\n" + SHOP,
        "[simulation] tick_durtion: unknown key; did you mean tick_duration? "
        "allowed keys: name, tick_duration, stop_tick, duration, seed, mode",
    ),
    "unknown key in [[actors]]": (
        SIM + SHOP + "cout = 2\n",
        f"{SHOP_AT} cout: unknown key; did you mean count? "
        "allowed keys: class, count, args, id, hint",
    ),
    "unknown key in [results]": (
        SIM + SHOP + "[results]\noutput_dir = 'x'\n",
        "[results] output_dir: unknown key; did you mean output? "
        "allowed keys: output, include, exclude, plots, plot",
    ),
    "TOML syntax": (
        '[simulation]\nname = "a"\nseed 5\n',
        "line 3: Expected '=' after a key in a key/value pair (column 6); "
        "fix the TOML syntax there",
    ),
    "TOML syntax at end of file": (
        "[simulation]\nname = ",
        "end of file: Invalid value; fix the TOML syntax there",
    ),
    "missing [simulation]": (SHOP, "[simulation]: missing section; add a [simulation] table"),
    "[simulation] not a table": (
        "simulation = 5\n" + SHOP,
        "[simulation]: got integer 5; expected a table",
    ),
    "tick_duration wrong type": (
        "[simulation]\ntick_duration = 'fast'\n" + SHOP,
        f'[simulation] tick_duration: got string "fast"; {DURATION_HELP}',
    ),
    "tick_duration zero": (
        "[simulation]\ntick_duration = 0\n" + SHOP,
        "[simulation] tick_duration: got integer 0; expected a duration > 0 seconds",
    ),
    "tick_duration negative": (
        "[simulation]\ntick_duration = -0.5\n" + SHOP,
        "[simulation] tick_duration: got float -0.5; expected a duration > 0 seconds",
    ),
    "tick_duration zero string": (
        "[simulation]\ntick_duration = '0ms'\n" + SHOP,
        '[simulation] tick_duration: got string "0ms"; expected a duration > 0 seconds',
    ),
    "bad duration string": (
        "[simulation]\nduration = '8 hours'\n" + SHOP,
        f'[simulation] duration: got string "8 hours"; {DURATION_HELP}',
    ),
    "duration not whole ticks": (
        "[simulation]\ntick_duration = 0.7\nduration = '1s'\n" + SHOP,
        "[simulation] duration: 1.0 s is not a whole number of 0.7 s ticks: the nearest, "
        "1 tick(s) = 0.7 s, is off by 30.0% (limit 1.5%); use a shorter tick_duration "
        "or a duration closer to a multiple of it",
    ),
    "stop_tick and duration": (
        "[simulation]\nstop_tick = 10\nduration = '1h'\n" + SHOP,
        "[simulation]: both stop_tick and duration are given; keep only one",
    ),
    "stop_tick zero": (
        "[simulation]\nstop_tick = 0\n" + SHOP,
        "[simulation] stop_tick: got integer 0; expected a whole number >= 1",
    ),
    "stop_tick float": (
        "[simulation]\nstop_tick = 1.5\n" + SHOP,
        "[simulation] stop_tick: got float 1.5; expected a whole number >= 1",
    ),
    "seed wrong type": (
        "[simulation]\nseed = '5'\n" + SHOP,
        '[simulation] seed: got string "5"; expected a whole number >= 0',
    ),
    "bad mode": (
        "[simulation]\nmode = 'fast'\n" + SHOP,
        '[simulation] mode: got string "fast"; expected one of reproducible, ergodic, fastest',
    ),
    "bad name": (
        "[simulation]\nname = 'a/b'\n" + SHOP,
        '[simulation] name: got string "a/b"; '
        "expected a non-empty string without / or \\ (it names the results folder)",
    ),
    "output wrong type": (
        SIM + SHOP + "[results]\noutput = 5\n",
        "[results] output: got integer 5; expected a non-empty string",
    ),
    "include not an array": (
        SIM + SHOP + "[results]\ninclude = 'stock'\n",
        '[results] include: got string "stock"; expected an array of regular expressions, '
        'e.g. ["^stock$", "cans_.*"]',
    ),
    "include item not a string": (
        SIM + SHOP + "[results]\ninclude = ['stock', 3]\n",
        "[results] include[1]: got integer 3; expected a regular expression (a string), "
        'e.g. ["^stock$", "cans_.*"]',
    ),
    "bad include regex": (
        SIM + SHOP + "[results]\ninclude = ['stock', 'cans_(']\n",
        '[results] include[1]: got string "cans_(", which is not a regular expression '
        "(missing ), unterminated subpattern at position 5); fix the pattern; to match a "
        "special character such as ( itself, put a backslash before it: '\\(' "
        "(in TOML single quotes)",
    ),
    "bad exclude regex": (
        SIM + SHOP + "[results]\nexclude = ['*thirst']\n",
        '[results] exclude[0]: got string "*thirst", which is not a regular expression '
        "(nothing to repeat at position 0); fix the pattern; to match a "
        "special character such as ( itself, put a backslash before it: '\\(' "
        "(in TOML single quotes)",
    ),
    "plots not a boolean": (
        SIM + SHOP + "[results]\nplots = 'yes'\n",
        '[results] plots: got string "yes"; expected true or false',
    ),
    "no [[actors]]": (
        SIM,
        "[[actors]]: no actors; add at least one [[actors]] table with a class, "
        'e.g. class = "model.py:Shop"',
    ),
    "[actors] written as a table": (
        SIM + "[actors]\nclass = 'model.py:Shop'\n",
        "[[actors]]: got a table; expected an array of tables: write [[actors]] before each entry",
    ),
    "actor entry not a table": (
        "actors = ['x']\n" + SIM,
        '[[actors]] #1: got string "x"; expected a table',
    ),
    "missing class": (
        SIM + "[[actors]]\ncount = 2\n",
        '[[actors]] #1: missing key class; add class = "package.module:Class" '
        'or class = "path/to/file.py:Class"',
    ),
    "class without ':'": (
        SIM + "[[actors]]\nclass = 'model.py.Shop'\n",
        '[[actors]] #1 (class "model.py.Shop") class: got string "model.py.Shop"; '
        'expected "package.module:Class" or "path/to/file.py:Class"',
    ),
    "missing module": (
        SIM + "[[actors]]\nclass = 'no_such_pkg_xyz.models:Shop'\n",
        '[[actors]] #1 (class "no_such_pkg_xyz.models:Shop") class: '
        'no module named "no_such_pkg_xyz.models"; '
        'check the spelling, or give a file: "path/to/file.py:Class"',
    ),
    "missing class in module": (
        SIM + "[[actors]]\nclass = 'model.py:Shopp'\n",
        '[[actors]] #1 (class "model.py:Shopp") class: "model.py" has no Shopp; '
        "did you mean Shop? its Actor classes: Broken, Customer, Heavy, Node, Ring, Shop",
    ),
    "not an Actor subclass": (
        SIM + "[[actors]]\nclass = 'model.py:Plain'\n",
        '[[actors]] #1 (class "model.py:Plain") class: Plain is not a subclass of '
        "engine.Actor; name a class that subclasses engine.Actor",
    ),
    "a function, not a class": (
        SIM + "[[actors]]\nclass = 'model.py:helper'\n",
        '[[actors]] #1 (class "model.py:helper") class: helper is not a subclass of '
        "engine.Actor; name a class that subclasses engine.Actor",
    ),
    "module raises on import": (
        SIM + "[[actors]]\nclass = 'broken.py:Shop'\n",
        '[[actors]] #1 (class "broken.py:Shop") class: importing "broken.py" failed: '
        "ZeroDivisionError: division by zero; fix that module",
    ),
    "count is a boolean": (
        SIM + SHOP + "count = true\n",
        f"{SHOP_AT} count: got boolean true; expected a whole number >= 0",
    ),
    "negative count": (
        SIM + SHOP + "count = -1\n",
        f"{SHOP_AT} count: got integer -1; expected a whole number >= 0",
    ),
    "args not a table": (
        SIM + SHOP + "args = [1]\n",
        f"{SHOP_AT} args: got an array; expected a table",
    ),
    "hint wrong type": (
        SIM + SHOP + "hint = 1.5\n",
        f"{SHOP_AT} hint: got float 1.5; expected a string or a whole number",
    ),
    "id with @": (
        SIM + SHOP + "id = '@x'\n",
        f'{SHOP_AT} id: got string "@x"; expected a non-empty string without "@"',
    ),
    "duplicate id": (
        SIM + SHOP + "id = 'shop'\n" + SHOP + "id = 'shop'\n",
        '[[actors]] #2 (class "model.py:Shop") id: id "shop" is already used by '
        "[[actors]] #1; give each entry its own id",
    ),
    "id clashes with a counted entry": (
        SIM + SHOP + "id = 'c'\ncount = 3\n" + SHOP + "id = 'c-1'\n",
        '[[actors]] #2 (class "model.py:Shop") id: id "c-1" clashes with id "c" of '
        '[[actors]] #1: both name an actor "c-1"; give each entry its own id',
    ),
    "counted entry clashes with an id": (
        SIM + SHOP + "id = 'c-2'\n" + SHOP + "id = 'c-1-0'\n" + SHOP + "id = 'c'\ncount = 3\n",
        '[[actors]] #3 (class "model.py:Shop") id: id "c" clashes with id "c-2" of '
        '[[actors]] #1: both name an actor "c-2"; give each entry its own id',
    ),
    "unknown argument": (
        SIM + CUSTOMER + "args = { shop = 1, budgett = 3 }\n",
        f"{CUSTOMER_AT} args.budgett: unknown argument of Customer(); "
        "did you mean budget? Customer() accepts: shop, budget",
    ),
    "missing argument": (
        SIM + CUSTOMER + "args = { budget = 3 }\n",
        f"{CUSTOMER_AT} args: missing required argument shop of Customer(); "
        "add it to args, e.g. args = { shop = ... }",
    ),
    "dangling reference, close": (
        SIM + CUSTOMER + "args = { shop = '@shopp' }\n" + SHOP + "id = 'shop'\n",
        f'{CUSTOMER_AT} args.shop: dangling reference "@shopp"; did you mean "@shop"?',
    ),
    "dangling reference, nothing close": (
        SIM + CUSTOMER + "args = { shop = '@nobody' }\n",
        f'{CUSTOMER_AT} args.shop: dangling reference "@nobody"; '
        'no actor has that id (write "@@nobody" for the string "@nobody")',
    ),
    "dangling reference past a count": (
        SIM + "[[actors]]\nclass = 'model.py:Node'\nid = 'n'\ncount = 3\n"
        "args = { peers = ['@n-1', '@n-3'] }\n",
        '[[actors]] #1 (class "model.py:Node") args.peers[1]: dangling reference "@n-3"; '
        'id "n" names 3 actors, "@n-0" to "@n-2"',
    ),
    "reference to a counted entry as a whole": (
        SIM + "[[actors]]\nclass = 'model.py:Node'\nid = 'n'\ncount = 2\n"
        "args = { peers = [{ first = '@n' }] }\n",
        '[[actors]] #1 (class "model.py:Node") args.peers[0].first: dangling reference "@n"; '
        'id "n" names 2 actors, "@n-0" to "@n-1"',
    ),
    "reference to an empty entry": (
        SIM + SHOP + "id = 'none'\ncount = 0\n" + CUSTOMER + "args = { shop = '@none' }\n",
        '[[actors]] #2 (class "model.py:Customer") args.shop: dangling reference "@none"; '
        'id "none" names no actor (count = 0)',
    ),
    "unknown key in [deployment]": (
        SIM + SHOP + "[deployment]\ngroupsize = 4\n",
        "[deployment] groupsize: unknown key; did you mean group_size? "
        "allowed keys: group_size, routing, watchdog_s, process_grid",
    ),
    "group_size zero": (
        SIM + SHOP + "[deployment]\ngroup_size = 0\n",
        "[deployment] group_size: got integer 0; expected a whole number >= 1",
    ),
    "group_size string": (
        SIM + SHOP + "[deployment]\ngroup_size = '4'\n",
        '[deployment] group_size: got string "4"; expected a whole number >= 1',
    ),
    "bad routing": (
        SIM + SHOP + "[deployment]\nrouting = 'gateway'\n",
        '[deployment] routing: got string "gateway"; expected one of direct, s_group',
    ),
    "watchdog_s zero": (
        SIM + SHOP + "[deployment]\nwatchdog_s = 0\n",
        "[deployment] watchdog_s: got integer 0; expected a number of seconds > 0",
    ),
    "watchdog_s duration string": (
        SIM + SHOP + "[deployment]\nwatchdog_s = '1min'\n",
        '[deployment] watchdog_s: got string "1min"; expected a number of seconds > 0',
    ),
    "[deployment] not a table": (
        "deployment = 4\n" + SIM + SHOP,
        "[deployment]: got integer 4; expected a table",
    ),
    "unknown key in [placement]": (
        SIM + SHOP + "[placement]\npolicy = 'hint'\nweight = {}\n",
        "[placement] weight: unknown key; did you mean weights? allowed keys: policy, weights",
    ),
    "unknown policy": (
        SIM + SHOP + "[placement]\npolicy = 'metis'\n",
        '[placement] policy: got string "metis"; '
        "expected one of round_robin, hint, least_loaded, graph",
    ),
    "weights not a table": (
        SIM + SHOP + "[placement]\nweights = 3\n",
        "[placement] weights: got integer 3; expected a table",
    ),
    "weight of an unknown class": (
        SIM + SHOP + CUSTOMER + "args = { shop = 1 }\n"
        "[placement]\nweights = { 'model.py:Shopp' = 2 }\n",
        '[placement] weights."model.py:Shopp": no [[actors]] entry has class "model.py:Shopp"; '
        'did you mean "model.py:Shop"? '
        'the classes of [[actors]]: "model.py:Shop", "model.py:Customer"',
    ),
    "weight of a class written differently": (
        SIM + SHOP + "[placement]\nweights = { 'model:Shop' = 2 }\n",
        '[placement] weights."model:Shop": no [[actors]] entry has class "model:Shop"; '
        'did you mean "model.py:Shop"? the classes of [[actors]]: "model.py:Shop"',
    ),
    "weight zero": (
        SIM + SHOP + "[placement]\nweights = { 'model.py:Shop' = 0 }\n",
        '[placement] weights."model.py:Shop": got integer 0; expected a number > 0',
    ),
    "weight a string": (
        SIM + SHOP + "[placement]\nweights = { 'model.py:Shop' = 'heavy' }\n",
        '[placement] weights."model.py:Shop": got string "heavy"; expected a number > 0',
    ),
    "same class, two weights": (
        SIM + SHOP + "[[actors]]\nclass = './model.py:Shop'\n"
        "[placement]\nweights = { 'model.py:Shop' = 2, './model.py:Shop' = 3 }\n",
        '[placement] weights."./model.py:Shop": "./model.py:Shop" and "model.py:Shop" '
        "are the same class with different weights; keep one of them",
    ),
    "bad class weight under least_loaded": (
        SIM + SHOP + "[[actors]]\nclass = 'model.py:Broken'\n"
        "[placement]\npolicy = 'least_loaded'\n",
        '[[actors]] #2 (class "model.py:Broken"): Broken.weight is -1, which cannot be a '
        "placement weight; make it a number > 0, or give the class a weight in "
        "[placement] weights",
    ),
}


@pytest.mark.parametrize("text, expected", ERRORS.values(), ids=ERRORS.keys())
def test_error_message(write, text, expected):
    path = write(text)
    assert message(path) == f"{path}: {expected}"


@pytest.mark.parametrize("override", ["simulation.seed", "seed=5", ".seed=5", "simulation.=5"])
def test_malformed_override(write, override):
    path = write(SIM + SHOP)
    assert message(path, [override]) == (
        f"{path}: --set {override}: malformed override; "
        "expected section.key=value, e.g. simulation.seed=5"
    )


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "simulaton.seed=5",
            "--set simulaton.seed=5: section cannot be set; did you mean [simulation]? "
            "only these sections can be set: [simulation], [results], "
            "[deployment], [placement], [checkpoint], [[populations]]",
        ),
        (
            "actors.count=2",
            "--set actors.count=2: section cannot be set; "
            "only these sections can be set: [simulation], [results], "
            "[deployment], [placement], [checkpoint], [[populations]]",
        ),
        (
            "simulation.sed=5",
            "--set simulation.sed=5: unknown key of [simulation]; did you mean seed? "
            "allowed keys: name, tick_duration, stop_tick, duration, seed, mode",
        ),
        (
            "deployment.groupsize=4",
            "--set deployment.groupsize=4: unknown key of [deployment]; did you mean group_size? "
            "allowed keys: group_size, routing, watchdog_s, process_grid",
        ),
        (
            "placement.policy=graf",
            '[placement] policy: got string "graf"; '
            "expected one of round_robin, hint, least_loaded, graph",
        ),
        ("simulation.seed=-3", "[simulation] seed: got integer -3; expected a whole number >= 0"),
        (
            "simulation.mode=fast",
            '[simulation] mode: got string "fast"; expected one of reproducible, ergodic, fastest',
        ),
    ],
)
def test_override_error(write, override, expected):
    path = write(SIM + SHOP)
    assert message(path, [override]) == f"{path}: {expected}"


def test_missing_scenario_file(tmp_path):
    path = tmp_path / "nope.toml"
    assert (
        message(path) == f"{path}: cannot read the file (No such file or directory); check the path"
    )


def test_missing_model_file(write, tmp_path):
    path = write(SIM + "[[actors]]\nclass = 'lib/nope.py:Shop'\n")
    assert message(path) == (
        f'{path}: [[actors]] #1 (class "lib/nope.py:Shop") class: '
        f"no file {(tmp_path / 'lib' / 'nope.py').resolve()}; "
        "paths are relative to the scenario file's folder"
    )


def test_missing_dependency_is_an_import_failure(write, tmp_path, monkeypatch):
    package = tmp_path / "scn_pkg_dep"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "bad.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(SIM + "[[actors]]\nclass = 'scn_pkg_dep.bad:Shop'\n")
    assert message(path) == (
        f'{path}: [[actors]] #1 (class "scn_pkg_dep.bad:Shop") class: '
        'importing "scn_pkg_dep.bad" failed: ModuleNotFoundError: '
        "No module named 'no_such_dependency_xyz'; fix that module"
    )


def test_error_without_file_or_place():
    with pytest.raises(ScenarioError) as info:
        parse_duration("soon", "[simulation] duration")
    assert str(info.value) == f'[simulation] duration: got string "soon"; {DURATION_HELP}'
    assert str(ScenarioError("plain message")) == "plain message"


def test_message_is_one_line_even_if_a_module_raises_multiline(write, tmp_path):
    (tmp_path / "multi.py").write_text("raise RuntimeError('first\\nsecond')\n")
    path = write(SIM + "[[actors]]\nclass = 'multi.py:Shop'\n")
    assert message(path).endswith("failed: RuntimeError: first second; fix that module")


# --- the happy path ------------------------------------------------------------


def test_defaults(write):
    path = write(SIM + SHOP)
    s = load_scenario(path)
    assert s.path == path.resolve()
    assert s.text == SIM + SHOP
    assert (s.name, s.tick_duration, s.stop_tick, s.seed, s.mode, s.output) == (
        "s",
        1.0,
        None,
        None,
        "reproducible",
        None,
    )
    [entry] = s.actors
    assert entry.cls.__name__ == "Shop" and issubclass(entry.cls, Actor)
    assert (entry.class_ref, entry.count, entry.first_aai, entry.args) == (
        "model.py:Shop",
        1,
        1,
        {},
    )
    assert (entry.id, entry.hint, entry.refs) == (None, None, [])
    assert s.data == {"simulation": {}, "actors": [{"class": "model.py:Shop"}]}
    assert (s.group_size, s.routing, s.watchdog_s, s.placement, s.weights) == (
        None,
        "direct",
        60.0,
        "round_robin",
        {},
    )


def test_all_keys(write):
    path = write(
        """
        [simulation]
        name = "soda"
        tick_duration = "20ms"
        duration = "1s"
        seed = 7
        mode = "ergodic"

        [[actors]]
        class = "model.py:Shop"
        hint = 3

        [results]
        output = "runs/soda"
        """
    )
    s = load_scenario(path)
    assert (s.name, s.tick_duration, s.stop_tick, s.seed, s.mode) == (
        "soda",
        0.02,
        50,
        7,
        "ergodic",
    )
    assert s.output == "runs/soda"
    assert s.actors[0].hint == 3
    assert (s.include, s.exclude, s.plots) == ([], [], True)


def test_result_specification(write):
    path = write(SIM + SHOP + "[results]\ninclude = ['^stock$', 'cans_.*']\nexclude = ['x']\n")
    s = load_scenario(path, ["results.plots=false"])
    assert (s.include, s.exclude, s.plots) == (["^stock$", "cans_.*"], ["x"], False)


def test_deployment_and_placement(write):
    path = write(
        """
        [simulation]

        [[actors]]
        class = "model.py:Shop"

        [[actors]]
        class = "model.py:Heavy"

        [[actors]]
        class = "model.py:Shop"
        count = 2

        [deployment]
        group_size = 4
        routing = "s_group"
        watchdog_s = 2.5

        [placement]
        policy = "least_loaded"
        weights = { "model.py:Shop" = 3 }
        """
    )
    s = load_scenario(path)
    shop, heavy = s.actors[0].cls, s.actors[1].cls
    assert (s.group_size, s.routing, s.watchdog_s, s.placement) == (
        4,
        "s_group",
        2.5,
        "least_loaded",
    )
    assert s.weights == {shop: 3.0}
    assert type(s.weights[shop]) is float
    assert heavy not in s.weights  # its class attribute weight = 5 is the placement's business


def test_deployment_and_placement_overrides(write):
    path = write(SIM + SHOP + "[deployment]\ngroup_size = 4\n")
    s = load_scenario(
        path,
        [
            "deployment.group_size=2",
            "deployment.routing=s_group",
            "deployment.watchdog_s=5",
            "placement.policy=graph",
            'placement.weights={ "model.py:Shop" = 1.5 }',
        ],
    )
    assert (s.group_size, s.routing, s.watchdog_s, s.placement) == (2, "s_group", 5.0, "graph")
    assert s.weights == {s.actors[0].cls: 1.5}


def test_every_policy_is_accepted(write):
    from runtime.placement import POLICIES

    path = write(SIM + SHOP)
    assert [load_scenario(path, [f"placement.policy={p}"]).placement for p in POLICIES] == list(
        POLICIES
    )


def test_aais_ids_and_references(write):
    path = write(
        """
        [simulation]

        [[actors]]
        class = "model.py:Customer"
        id = "c"
        count = 3
        args = { shop = "@shop", budget = ["@c-0", { last = "@c-2" }, "@@literal", "@@@x"] }

        [[actors]]
        class = "model.py:Node"
        count = 0

        [[actors]]
        class = "model.py:Shop"
        id = "shop"
        args = { customers = ["@c-0", "@c-1", "@c-2"], me = "@shop", tag = "plain" }

        [[actors]]
        class = "model.py:Node"
        count = 2
        """
    )
    customers, empty, shop, nodes = load_scenario(path).actors
    assert [e.first_aai for e in (customers, empty, shop, nodes)] == [1, 4, 4, 5]
    assert customers.args == {"shop": 4, "budget": [1, {"last": 3}, "@literal", "@@x"]}
    assert shop.args == {"customers": [1, 2, 3], "me": 4, "tag": "plain"}
    assert [e.refs for e in (customers, empty, shop, nodes)] == [[1, 3, 4], [], [1, 2, 3, 4], []]
    assert (customers.id, shop.id, nodes.id) == ("c", "shop", None)


def test_references_leave_the_document_untouched(write):
    path = write(SIM + SHOP + "id = 'shop'\n" + CUSTOMER + "args = { shop = '@shop' }\n")
    s = load_scenario(path)
    assert s.actors[1].args == {"shop": 1}
    assert s.data["actors"][1]["args"] == {"shop": "@shop"}


def test_cyclic_references_run_in_the_kernel(write):
    path = write(
        """
        [simulation]
        seed = 1

        [[actors]]
        class = "model.py:Ring"
        id = "a"
        args = { next_node = "@b", hops = 4 }

        [[actors]]
        class = "model.py:Ring"
        id = "b"
        args = { next_node = "@c" }

        [[actors]]
        class = "model.py:Ring"
        id = "c"
        args = { next_node = "@a" }
        """
    )
    s = load_scenario(path)
    kernel = Kernel(tick_duration=s.tick_duration, stop_tick=s.stop_tick, seed=s.seed, mode=s.mode)
    for entry in s.actors:
        kernel.add_actors(entry.cls, entry.count, entry.hint, **entry.args)
    kernel.run()
    assert [kernel.actor(aai).seen for aai in (1, 2, 3)] == [1, 2, 1]


def test_actor_without_constructor_takes_any_args(write):
    path = write(SIM + SHOP + "args = { anything = 1, nested = { x = [1, 2] } }\n")
    assert load_scenario(path).actors[0].args == {"anything": 1, "nested": {"x": [1, 2]}}


def test_var_keyword_constructor_takes_any_args(write):
    path = write(SIM + "[[actors]]\nclass = 'model.py:Node'\nargs = { peers = [], extra = 1 }\n")
    assert load_scenario(path).actors[0].args == {"peers": [], "extra": 1}


def test_user_file_is_loaded_once_and_picklable(write):
    path = write(SIM + SHOP)
    first = load_scenario(path).actors[0].cls
    again = load_scenario(path).actors[0].cls
    assert first is again
    assert first.__module__.startswith("pydiasca_user_")
    assert sys.modules[first.__module__].Shop is first
    assert pickle.loads(pickle.dumps(first)) is first


def test_user_files_with_the_same_name_do_not_clash(write, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.py").write_text(
            f"from engine import Actor\n\nclass Shop(Actor):\n    KIND = {folder!r}\n"
        )
    path = write(
        SIM + "[[actors]]\nclass = 'a/model.py:Shop'\n[[actors]]\nclass = 'b/model.py:Shop'\n"
    )
    a, b = load_scenario(path).actors
    assert (a.cls.KIND, b.cls.KIND) == ("a", "b")
    assert a.cls.__module__ != b.cls.__module__


def test_paths_are_relative_to_the_scenario(write, tmp_path, monkeypatch):
    path = write(SIM + "[[actors]]\nclass = '../model.py:Shop'\n", name="sub/s.toml")
    monkeypatch.chdir("/")
    assert load_scenario(path).actors[0].cls.__name__ == "Shop"


def test_dotted_class_reference(write, tmp_path, monkeypatch):
    package = tmp_path / "scn_pkg_ok"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "things.py").write_text(
        "from engine import Actor\n\nclass Thing(Actor):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(SIM + "[[actors]]\nclass = 'scn_pkg_ok.things:Thing'\n")
    assert load_scenario(path).actors[0].cls.__module__ == "scn_pkg_ok.things"


def test_overrides(write):
    path = write("[simulation]\nname = 'base'\nseed = 1\n" + SHOP)
    s = load_scenario(
        path,
        [
            "simulation.name=foo",
            "simulation.seed=5",
            'simulation.mode="fastest"',
            "simulation.stop_tick = 10",
            "results.output=out/x",
        ],
    )
    assert (s.name, s.seed, s.mode, s.stop_tick, s.output) == ("foo", 5, "fastest", 10, "out/x")
    assert s.data["simulation"]["seed"] == 5
    assert s.data["results"] == {"output": "out/x"}
    assert "seed = 1" in s.text  # the text stays as read


def test_an_override_of_the_end_replaces_the_other_end(write):
    path = write("[simulation]\ntick_duration = 1\nduration = '1h'\n" + SHOP)
    assert load_scenario(path).stop_tick == 3600
    assert load_scenario(path, ["simulation.stop_tick=5"]).stop_tick == 5
    assert (
        load_scenario(path, [Override("simulation", "stop_tick", 7, "--stop-tick")]).stop_tick == 7
    )
    path = write("[simulation]\ntick_duration = 1\nstop_tick = 100\n" + SHOP, "t.toml")
    assert load_scenario(path, ["simulation.duration='10s'"]).stop_tick == 10


def test_a_flag_is_checked_like_the_file_and_named_in_the_error(write):
    path = write(SIM + SHOP)
    cases = [
        (Override("simulation", "stop_tick", 0, "--stop-tick"), "integer 0", "a whole number >= 1"),
        (Override("simulation", "seed", -1, "--seed"), "integer -1", "a whole number >= 0"),
        (
            Override("simulation", "mode", "fast", "--mode"),
            'string "fast"',
            "one of reproducible, ergodic, fastest",
        ),
        (
            Override("deployment", "routing", "star", "--routing"),
            'string "star"',
            "one of direct, s_group",
        ),
        (
            Override("placement", "policy", "metis", "--placement"),
            'string "metis"',
            "one of round_robin, hint, least_loaded, graph",
        ),
    ]
    for override, got, expected in cases:
        # No file name: the flag, not the file, holds the bad value.
        assert message(path, [override]) == f"{override.origin}: got {got}; expected {expected}"


def test_flags_come_after_set_and_win(write):
    path = write(SIM + "seed = 1\n" + SHOP)
    flag = Override("simulation", "seed", 5, "--seed")
    assert load_scenario(path, ["simulation.seed=4", flag]).seed == 5
    assert load_scenario(path, ["simulation.seed=4", "simulation.seed=6"]).seed == 6


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("8h", 28800),
        ("1h30min", 5400),
        ("1h 30min", 5400),
        ("1.5h", 5400),
        ("90s", 90),
        ("15min", 900),
        ("3d", 259200),
        ("2w", 1209600),
        ("500ms", 0.5),
        (" 20 ms ", 0.02),
        (90, 90.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text, "here") == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "8 hours", "1h30", "-5s", "h", "1H", "5m", True, [1], float("inf"), 0, -1]
)
def test_parse_duration_refuses(text):
    with pytest.raises(ScenarioError):
        parse_duration(text, "here")


@pytest.mark.parametrize(
    "tick, duration, stop_tick",
    [(1, '"8h"', 28800), (1, '"1h30min"', 5400), (0.5, "90", 180), ('"20ms"', '"1s"', 50)],
)
def test_duration_becomes_stop_tick(write, tick, duration, stop_tick):
    path = write(f"[simulation]\ntick_duration = {tick}\nduration = {duration}\n" + SHOP)
    assert load_scenario(path).stop_tick == stop_tick


def test_ids_with_dashes_resolve_unambiguously(write):
    path = write(
        SIM
        + "[[actors]]\nclass = 'model.py:Shop'\nid = 'c-1'\ncount = 2\n"
        + "[[actors]]\nclass = 'model.py:Shop'\nid = 'c'\ncount = 2\n"
        + "[[actors]]\nclass = 'model.py:Shop'\nargs = { to = ['@c-1', '@c-1-0', '@c-0'] }\n"
    )
    assert load_scenario(path).actors[2].args == {"to": [4, 1, 3]}


# --- [[populations]] ---------------------------------------------------------------

POPULATION_MODEL = """
import numpy as np
from numba import njit
from engine import DensePopulation


@njit(cache=True)
def step(src, dst, tick, key, block):
    dst[0][:] = src[0] + 1


class Grid(DensePopulation):
    fields = {"x": np.int64}
    kernel = staticmethod(step)

    def __init__(self, rows, columns=4):
        self.shape = (rows, columns)


class Free(DensePopulation):
    fields = {"x": np.int64}
    kernel = staticmethod(step)
    shape = 8
"""

GRID = '[[populations]]\nclass = "pop.py:Grid"\nargs = { rows = 6 }\n'
GRID_AT = '[[populations]] #1 (class "pop.py:Grid")'
STOP = "[simulation]\nstop_tick = 5\n"


@pytest.fixture
def write_pop(write, tmp_path):
    (tmp_path / "pop.py").write_text(POPULATION_MODEL)
    return write


def test_populations_load_in_order_and_need_no_actors(write_pop):
    path = write_pop(
        STOP
        + GRID
        + '[[populations]]\nclass = "pop.py:Free"\nname = "free"\nargs = { shape = 12 }\n'
        + "[deployment]\nprocess_grid = [2, 1]\n"
    )
    s = load_scenario(path)
    assert s.actors == []
    assert [(p.name, p.cls.__name__, p.args) for p in s.populations] == [
        ("grid", "Grid", {"rows": 6}),
        ("free", "Free", {"shape": 12}),
    ]
    assert s.process_grid == (2, 1)
    assert load_scenario(path, ["deployment.process_grid=[1, 2]"]).process_grid == (1, 2)


def test_population_scenario_runs(write_pop, tmp_path):
    from runtime.runner import run_scenario

    path = write_pop(STOP + GRID + SHOP)
    outcome = run_scenario(load_scenario(path), out=tmp_path / "run")
    assert outcome.status == "completed" and outcome.stats.ticks == 5
    from runtime.results import read_probes

    ticks, aais, sums = read_probes(tmp_path / "run" / "results.h5")["grid.x.sum"]
    assert ticks.tolist() == [0, 1, 2, 3, 4] and sums.tolist() == [24, 48, 72, 96, 120]


POPULATION_ERRORS = {
    "unknown key": (
        STOP + GRID + "size = 3\n",
        f"{GRID_AT} size: unknown key; allowed keys: class, name, args, backend, digest",
    ),
    "missing class": (
        STOP + "[[populations]]\nname = 'g'\n",
        '[[populations]] #1: missing key class; add class = "package.module:Class" or '
        'class = "path/to/file.py:Class"',
    ),
    "an actor class": (
        STOP + '[[populations]]\nclass = "model.py:Shop"\n',
        '[[populations]] #1 (class "model.py:Shop") class: Shop is not a subclass of '
        "engine.DensePopulation; name a class that subclasses engine.DensePopulation",
    ),
    "no such class": (
        STOP + '[[populations]]\nclass = "pop.py:Gird"\n',
        '[[populations]] #1 (class "pop.py:Gird") class: "pop.py" has no Gird; did you mean '
        "Grid? its DensePopulation classes: Free, Grid",
    ),
    "unknown argument": (
        STOP + '[[populations]]\nclass = "pop.py:Grid"\nargs = { rows = 2, colums = 3 }\n',
        f"{GRID_AT} args.colums: unknown argument of Grid(); did you mean columns? "
        "Grid() accepts: rows, columns",
    ),
    "missing argument": (
        STOP + '[[populations]]\nclass = "pop.py:Grid"\n',
        f"{GRID_AT} args: missing required argument rows of Grid(); add it to args, "
        "e.g. args = { rows = ... }",
    ),
    "same name twice": (
        STOP + GRID + GRID,
        '[[populations]] #2 (class "pop.py:Grid") name: name "grid" is already used by '
        "[[populations]] #1; give each population its own name",
    ),
    "name with a slash": (
        STOP + GRID + "name = 'a/b'\n",
        f'{GRID_AT} name: got string "a/b"; expected a non-empty string without "@" or "/", '
        "at most 100 characters",
    ),
    "no end": (
        SIM + GRID,
        "[simulation]: populations update at every tick, so the run needs an end; "
        "add stop_tick or duration",
    ),
    "not an array": (
        STOP + SHOP + "[populations]\nclass = 'pop.py:Grid'\n",
        "[[populations]]: got a table; expected an array of tables: write [[populations]] "
        "before each",
    ),
    "bad process grid": (
        STOP + GRID + "[deployment]\nprocess_grid = [2, 0]\n",
        "[deployment] process_grid: got an array; expected [rows, columns] of ranks, e.g. [2, 2]",
    ),
    "neither actors nor populations": (
        STOP,
        "[[actors]]: no actors; add at least one [[actors]] table with a class, e.g. "
        'class = "model.py:Shop"',
    ),
}


@pytest.mark.parametrize("text, expected", POPULATION_ERRORS.values(), ids=POPULATION_ERRORS)
def test_population_error_message(write_pop, text, expected):
    path = write_pop(text)
    assert message(path) == f"{path}: {expected}"


# --- issue 9: arguments against annotations, and the bounds of every value ----------------------

TYPED = """
from engine import Actor


class Typed(Actor):
    def __init__(self, n: int, x: float = 0.0, tag: str | None = None, items: list | tuple = ()):
        self.n, self.x, self.tag, self.items = n, x, tag, items
"""
TYPED_AT = '[[actors]] #1 (class "typed.py:Typed")'


@pytest.mark.parametrize(
    "args, expected",
    [
        ("n = inf", "args.n: got float inf; expected an integer (as Typed() declares n)"),
        ("n = 1, x = 'a'", 'args.x: got string "a"; expected a number (as Typed() declares x)'),
        ("n = true", "args.n: got boolean true; expected an integer (as Typed() declares n)"),
        ("n = 1, tag = 3", "args.tag: got integer 3; expected a string (as Typed() declares tag)"),
        (
            "n = 1, items = 'ab'",
            'args.items: got string "ab"; expected an array (as Typed() declares items)',
        ),
        (
            "n = 18446744073709551616",
            "args.n: got integer 18446744073709551616; expected an "
            "integer from -9223372036854775808 to 9223372036854775807 (64 bits)",
        ),
        (
            'n = 1, items = ["a\\u0000"]',
            "args.items[0]: got a string with a NUL character at "
            "position 1; remove it: results files cannot hold it",
        ),
    ],
)
def test_arguments_must_match_plain_annotations(write, tmp_path, args, expected):
    (tmp_path / "typed.py").write_text(TYPED)
    path = write(SIM + f"[[actors]]\nclass = 'typed.py:Typed'\nargs = {{ {args} }}\n")
    assert message(path) == f"{path}: {TYPED_AT} {expected}"


def test_annotations_accept_what_they_say(write, tmp_path):
    (tmp_path / "typed.py").write_text(TYPED)
    text = SIM + "[[actors]]\nclass = 'typed.py:Typed'\nargs = { n = 2, x = 3, items = [1] }\n"
    assert load_scenario(write(text)).actors[0].args == {"n": 2, "x": 3, "items": [1]}


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "[simulation]\nseed = 18446744073709551616\n" + SHOP,
            "[simulation] seed: got integer 18446744073709551616; expected a whole number from 0 "
            "to 18446744073709551615",
        ),
        (
            '[simulation]\nname = "a\\nb"\n' + SHOP,
            "[simulation] name: got a string with the control character '\\n' at position 1; "
            "remove it",
        ),
        (
            "[simulation]\nname = '" + "é" * 101 + "'\n" + SHOP,
            "[simulation] name: got a string of 202 bytes; expected at most 200",
        ),
        (
            "[simulation]\ntick_duration = 5e-324\nduration = '1w'\n" + SHOP,
            "[simulation] duration: 604800.0 s is more than 9223372036854775807 ticks of 5e-324 s; "
            "use a longer tick_duration or a shorter duration",
        ),
    ],
)
def test_bounds_of_settings(write, text, expected):
    path = write(text)
    assert message(path) == f"{path}: {expected}"
