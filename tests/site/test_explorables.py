"""The explorables compute what graves computes.

Each explorable (book/_static/explorables/) reruns an optimizer in the page with
the JavaScript transcription of graves.core in core.js.  These tests drive the
sliders in Chromium with fixed values, read the trajectories the page computed
(window.gravesExplorables.instances[name].result()) and recompute them with
graves in Python on the same problem: float64, 200 steps, relative 1e-12.  The
page's noise is regenerated here from its seed by an independent transcription
of the generator and must agree bit for bit.  Further tests run each JavaScript
step function against its graves.core original on random inputs (every
CenteredVariant), open the pages from file://, use the keyboard, check the labels
and print, check that the marks' labels under the sliders stay clear of the
thumbs and of each other, and save screenshots to
_build/screenshots/explorable-*.png.
"""

import itertools
import json

import numpy as np
import pytest

import graves
from graves import core, frameworks

from conftest import HTML, ROOT, require_chromium
from test_browser import (DESKTOP, DESKTOP_LETTERS, PHONE, PHONE_LETTERS,
                          open_page, settle)

require_chromium()  # the fixtures base_url and browser (conftest.py) serve the site and drive Chromium

SHOTS = ROOT / "_build" / "screenshots"
RTOL = 1e-12
STEPS = 200
PAGES = {
    "momentum": "book/01_gradient_descent.html",
    "ewma": "book/02_moving_averages.html",
    "centered": "book/04_graves.html",
    "eps-placement": "book/07_frameworks.html",
    "lr-drop": "book/07_frameworks.html",
}
WORST = {}  # explorable -> largest relative difference seen, written to _build/explorables-parity.json


# -- the noise, transcribed independently of core.js ------------------------------------------

M32 = 0xFFFFFFFF


def mulberry32(seed):
    state = seed & M32

    def draw():
        nonlocal state
        state = (state + 0x6D2B79F5) & M32
        t = state
        t = ((t ^ (t >> 15)) * (t | 1)) & M32
        t = (t ^ ((t + (((t ^ (t >> 7)) * (t | 61)) & M32)) & M32)) & M32
        return (t ^ (t >> 14)) & M32

    return draw


def noise(seed, count):
    """Twelve uniforms k/2^32 summed, minus 6: exact in float64 (the sum needs 36 bits)."""
    draw = mulberry32(seed)
    return [sum(draw() for _ in range(12)) / 2**32 - 6.0 for _ in range(count)]


def test_noise_is_centred_with_unit_variance():
    xi = np.array(noise(7, 20000))
    assert abs(xi.mean()) < 0.03 and abs(xi.var() - 1) < 0.03


# -- helpers ------------------------------------------------------------------------------------


def compare(name, js, py):
    js, py = np.asarray(js, dtype=np.float64), np.asarray(py, dtype=np.float64)
    assert js.shape == py.shape, f"{name}: shapes {js.shape} and {py.shape}"
    assert np.isfinite(py).all(), f"{name}: the Python run is not finite, the comparison would be vacuous"
    np.testing.assert_allclose(js, py, rtol=RTOL, atol=0, err_msg=name)
    nonzero = py != 0
    rel = float(np.max(np.abs(js - py)[nonzero] / np.abs(py[nonzero]), initial=0.0))
    key = name.split(":")[0]
    WORST[key] = max(WORST.get(key, 0.0), rel)


@pytest.fixture(scope="module")
def tab(browser, base_url):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.errors = []
    # Chromium asks the server for /favicon.ico on its own; the site has none, which is not a page error
    page.on("console", lambda m: page.errors.append(f"{m.text} ({m.location.get('url')})")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico") else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("response", lambda r: page.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.base = base_url
    yield page
    ctx.close()
    SHOTS.parent.mkdir(parents=True, exist_ok=True)
    (ROOT / "_build" / "explorables-parity.json").write_text(json.dumps(WORST, indent=1) + "\n")


def open_explorable(tab, name):
    url = f"{tab.base}/{PAGES[name]}"
    if tab.url.split("#")[0] != url:
        tab.goto(url, wait_until="domcontentloaded")
    tab.wait_for_selector(f'.gx-explorable[data-explorable="{name}"][data-ready="true"]', timeout=20000)


def set_sliders(tab, name, values):
    """Move the sliders of an explorable as a reader would (Playwright fills the range input and fires input)."""
    for key, text in values.items():
        spec = tab.evaluate(
            "([n, k]) => { const s = gravesExplorables.instances[n].sliders[k];"
            " return {id: s.input.id, values: s.values || null}; }",
            [name, key],
        )
        position = str(spec["values"].index(text)) if spec["values"] else text
        tab.locator(f"#{spec['id']}").fill(position)
    result = tab.evaluate(f"() => gravesExplorables.instances[{json.dumps(name)}].result()")
    for key, text in values.items():
        assert result["params"][key] == float(text), f"{name}: the page ran {key}={result['params'][key]!r}, not {text}"
    assert not tab.errors, tab.errors
    return result


# -- chapter 1 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lr, momentum", [("1.8", "0.9"), ("0.5", "0.3"), ("2.05", "0"), ("3.9", "0.99")])
def test_momentum_matches_graves_sgd(tab, lr, momentum):
    open_explorable(tab, "momentum")
    r = set_sliders(tab, "momentum", {"lr": lr, "momentum": momentum})
    problem = r["problem"]
    assert problem == {"h": [0.01, 1.0], "w0": [-10.0, 1.0], "steps": STEPS}
    h = np.array(problem["h"], dtype=np.float64)
    for run, mu in (("plain", 0.0), ("heavy", float(momentum))):
        opt = graves.SGD(lr=float(lr), momentum=mu)
        params = {"w": np.array(problem["w0"], dtype=np.float64)}
        path = [params["w"].copy()]
        for _ in range(STEPS):
            opt.update(params, {"w": h * params["w"]})
            path.append(params["w"].copy())
        compare(f"momentum: {run}, lr={lr}, momentum={momentum}", r["paths"][run], path)


# -- chapter 2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("decay", ["0.95", "0.5", "0.995", "0.9"])
def test_ewma_matches_core_ema_update(tab, decay):
    open_explorable(tab, "ewma")
    r = set_sliders(tab, "ewma", {"decay": decay})
    p = r["problem"]
    assert (p["steps"], p["jump"], p["noise"]) == (STEPS, 100, 0.3)
    xi = noise(p["seed"], STEPS)
    inputs = [(1.0 if t <= p["jump"] else 2.0) + p["noise"] * xi[t - 1] for t in range(1, STEPS + 1)]
    assert p["inputs"] == inputs, "the page's noisy input differs from the seeded noise regenerated in Python"
    average, scratch, history = np.zeros(3), np.empty(3), []
    for t in range(1, STEPS + 1):
        core.ema_update(average, np.array([1.0 if t == 1 else 0.0, 1.0, inputs[t - 1]]), float(decay), scratch)
        history.append(average.copy())
    history = np.array(history)
    compare(f"ewma: decay={decay}", r["averages"], history)
    compare(f"ewma: corrected, decay={decay}", r["corrected"], history[:, 2] / history[:, 1])


# -- chapter 4 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alpha, eps, sigma",
    [("0.95", "1e-4", "0.01"), ("0.9", "1e-8", "0.001"), ("0.99", "1e-2", "0.5"), ("0.5", "1", "0"), ("0.999", "1e-6", "1")],
)
def test_centered_matches_core_rmsprop_and_graves_step(tab, alpha, eps, sigma):
    open_explorable(tab, "centered")
    r = set_sliders(tab, "centered", {"alpha": alpha, "eps": eps, "sigma": sigma})
    p, hp = r["problem"], r["params"]
    assert (p["h"], p["w0"], p["steps"], hp["lr"]) == ([1.0, 0.1], [1.0, 2.0], STEPS, 0.005)
    xi = np.array(noise(p["seed"], 2 * STEPS)).reshape(STEPS, 2)
    assert np.array_equal(np.array(p["noise"]), xi), "the page's noise differs from the seeded noise regenerated in Python"
    h, a, e, s = np.array(p["h"], dtype=np.float64), float(alpha), float(eps), float(sigma)
    for run in ("plain", "centered"):
        w = np.array(p["w0"], dtype=np.float64)
        state = core.RMSpropState(np.zeros(2)) if run == "plain" else core.CenteredState(np.zeros(2), np.zeros(2), np.zeros(2))
        path = [w.copy()]
        for t in range(STEPS):
            grad = h * w + s * xi[t]
            if run == "plain":
                core.rmsprop_step(w, grad, state, lr=hp["lr"], alpha=a, eps=e)
            else:
                core.graves_step(w, grad, state, lr=hp["lr"], alpha=a, momentum=0.0, eps=e)
            path.append(w.copy())
        compare(f"centered: {run}, alpha={alpha}, eps={eps}, sigma={sigma}", r["paths"][run], path)


def test_centered_explorable_shows_what_the_chapter_says(tab):
    """The prose beside it: with σ well above √ε the two runs nearly coincide; below it the centered
    rate along w_2 exceeds plain RMSprop's many times, and reaches the bound η/√ε once ε dominates."""
    open_explorable(tab, "centered")

    def rates(alpha, eps, sigma):
        r = set_sliders(tab, "centered", {"alpha": alpha, "eps": eps, "sigma": sigma})
        xi = np.array(r["problem"]["noise"])
        out = {}
        for run, path in r["paths"].items():
            w = np.array(path)
            grad2 = 0.1 * w[:-1, 1] + float(sigma) * xi[:, 1]
            out[run] = float(np.mean(((w[:-1, 1] - w[1:, 1]) / grad2)[-50:]))
        return out, r["params"]["lr"] / np.sqrt(float(eps))

    noisy, _ = rates("0.95", "1e-4", "1")
    assert abs(noisy["centered"] / noisy["plain"] - 1) < 0.05
    quiet, _ = rates("0.95", "1e-4", "0.001")
    assert quiet["centered"] > 5 * quiet["plain"]
    dominated, bound = rates("0.95", "1e-2", "0.001")
    assert abs(dominated["centered"] / bound - 1) < 0.02
    set_sliders(tab, "centered", {"alpha": "0.95", "eps": "1e-4", "sigma": "0.01"})  # back to the default


# -- chapter 7 ------------------------------------------------------------------------------------


def library_path(name, stream, lr, alpha, momentum, eps, drop=1.0, drop_at=-1):
    extra = {"centered": True} if name == "torch" else {}
    opt = frameworks.make(name, lr=lr, alpha=alpha, momentum=momentum, eps=eps, **extra)
    params, path = {"w": np.zeros(1)}, [0.0]
    for t, grad in enumerate(stream):
        if t == drop_at:
            opt.lr = opt.lr * drop
        opt.update(params, {"w": np.array([grad])})
        path.append(float(params["w"][0]))
    return path


@pytest.mark.parametrize("drop, momentum", [("0.1", "0.9"), ("0.01", "0.5"), ("10", "0.99"), ("1", "0")])
def test_lr_drop_matches_frameworks(tab, drop, momentum):
    open_explorable(tab, "lr-drop")
    r = set_sliders(tab, "lr-drop", {"drop": drop, "momentum": momentum})
    p, hp = r["problem"], r["params"]
    assert (p["steps"], p["sigma"], hp["lr"], hp["alpha"], hp["eps"], hp["drop_at"]) == (STEPS, 0.5, 1e-3, 0.95, 0, 100)
    stream = [1.0 + p["sigma"] * x for x in noise(p["seed"], STEPS)]
    assert p["stream"] == stream
    for name in ("chainer", "torch"):
        path = library_path(name, stream, hp["lr"], hp["alpha"], float(momentum), 0.0, float(drop), hp["drop_at"])
        compare(f"lr-drop: {name}, drop={drop}, momentum={momentum}", r["paths"][name], path)


@pytest.mark.parametrize("eps, sigma", [("1e-4", "0.01"), ("0", "0.1"), ("1e-8", "0"), ("1e-1", "1")])
def test_eps_placement_matches_frameworks(tab, eps, sigma):
    open_explorable(tab, "eps-placement")
    r = set_sliders(tab, "eps-placement", {"eps": eps, "sigma": sigma})
    p, hp = r["problem"], r["params"]
    assert (p["steps"], hp["lr"], hp["alpha"], hp["momentum"]) == (STEPS, 1e-3, 0.95, 0)
    stream = [1.0 + float(sigma) * x for x in noise(p["seed"], STEPS)]
    assert p["stream"] == stream
    for name in ("chainer", "torch"):
        path = library_path(name, stream, hp["lr"], hp["alpha"], 0.0, float(eps))
        compare(f"eps-placement: {name}, eps={eps}, sigma={sigma}", r["paths"][name], path)


# -- each JavaScript step function against its graves.core original -----------------------------

STEP_JS = """([fn, w0, grads, hp, variant]) => {
  const C = gravesCore, w = Float64Array.from(w0), size = w0.length, z = () => new Float64Array(size);
  const state = {velocity: z(), n: z(), g: z(), delta: z(), s: z()};
  grads.forEach((grad, t) => {
    const g = Float64Array.from(grad);
    if (fn === "sgd") C.sgdStep(w, g, state, hp.lr, hp.momentum);
    else if (fn === "rmsprop") C.rmspropStep(w, g, state, hp.lr, hp.alpha, hp.eps);
    else if (fn === "ema") C.emaUpdate(w, g, hp.alpha);
    else if (fn === "graves") C.gravesStep(w, g, state, hp.lr, hp.alpha, hp.momentum, hp.eps);
    else C.centeredRmspropStep(w, g, state, hp.lr, hp.alpha, hp.momentum, hp.eps, variant, t + 1 + hp.skip);
  });
  return [w, state.velocity, state.n, state.g, state.delta, state.s].map(a => Array.from(a));
}"""

def _valid(variant):
    try:
        core.check_variant(variant)
    except ValueError:
        return False
    return variant.lr_in_buffer or not variant.nesterov  # Nesterov exists only with lr in the buffer


VARIANTS = [
    v for v in (
        core.CenteredVariant(**dict(zip(core.CenteredVariant._fields, flags)))
        for flags in itertools.product(*[(True, False)] * 5, core.SPREAD_STATES)
    ) if _valid(v)
]
assert set(core.CenteredVariant._fields) == {"eps_in_sqrt", "lr_in_buffer", "nesterov", "bias_correction", "centered",
                                             "spread"}, "a new CenteredVariant field: transcribe it in core.js and here"


def js_variant(v):
    return {"epsInSqrt": v.eps_in_sqrt, "lrInBuffer": v.lr_in_buffer, "nesterov": v.nesterov,
            "biasCorrection": v.bias_correction, "centered": v.centered, "spread": v.spread}


def random_problem(seed, size=6):
    gen = np.random.default_rng(seed)
    offsets = gen.uniform(-2, 2, size)
    return gen.standard_normal(size), offsets + gen.standard_normal((STEPS, size))


def test_every_step_function_matches_graves_core(tab):
    open_explorable(tab, "momentum")
    hp = {"lr": 0.01, "alpha": 0.9, "momentum": 0.8, "eps": 1e-3}
    w0, grads = random_problem(17)
    for fn in ("sgd", "rmsprop", "ema", "graves"):
        got = tab.evaluate(STEP_JS, [fn, w0.tolist(), grads.tolist(), hp, None])
        w = w0.copy()
        sgd, rms = core.SGDState(np.zeros_like(w)), core.RMSpropState(np.zeros_like(w))
        cen = core.CenteredState(np.zeros_like(w), np.zeros_like(w), np.zeros_like(w))
        for grad in grads:
            if fn == "sgd":
                core.sgd_step(w, grad, sgd, lr=hp["lr"], momentum=hp["momentum"])
            elif fn == "rmsprop":
                core.rmsprop_step(w, grad, rms, lr=hp["lr"], alpha=hp["alpha"], eps=hp["eps"])
            elif fn == "ema":
                core.ema_update(w, grad, hp["alpha"], np.empty_like(w))
            else:
                core.graves_step(w, grad, cen, lr=hp["lr"], alpha=hp["alpha"], momentum=hp["momentum"], eps=hp["eps"])
        compare(f"core: {fn} w", got[0], w)
        states = {"sgd": [sgd.velocity], "rmsprop": [None, rms.n], "ema": [], "graves": [None, cen.n, cen.g, cen.delta]}[fn]
        for js_state, py_state in zip(got[1:], states):
            if py_state is not None:
                compare(f"core: {fn} state", js_state, py_state)


def test_page_noise_is_the_python_transcription(tab):
    open_explorable(tab, "momentum")
    for seed in (0, 2, 4, 9, 10, 0x9E3779B9):
        js = tab.evaluate("(seed) => { const d = gravesCore.mulberry32(seed); return Array.from({length: 1000}, d); }", seed)
        draw = mulberry32(seed)
        assert js == [draw() for _ in range(1000)], f"mulberry32 differs for seed {seed}"
        js = tab.evaluate("(seed) => { const d = gravesCore.noiseSource(seed); return Array.from({length: 1000}, d); }", seed)
        assert js == noise(seed, 1000), f"the noise differs for seed {seed}"


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(k for k, x in v._asdict().items() if x is True) + "-" + v.spread)
def test_centered_step_matches_every_variant(tab, variant):
    open_explorable(tab, "momentum")
    # skip: bias correction as from step 6, where n/S - (g/S)^2 is clearly positive (at step 1 it is
    # zero up to rounding, and a negative rounding makes sqrt(s) + eps NaN on both sides)
    hp = {"lr": 0.01, "alpha": 0.9, "momentum": 0.8, "eps": 1e-3, "skip": 5}
    w0, grads = random_problem(23)
    got = tab.evaluate(STEP_JS, ["centered", w0.tolist(), grads.tolist(), hp, js_variant(variant)])
    w = w0.copy()
    state = core.SPREAD_STATES[variant.spread](np.zeros_like(w), np.zeros_like(w), np.zeros_like(w))
    for t, grad in enumerate(grads, start=1 + hp["skip"]):
        core.centered_rmsprop_step(w, grad, state, lr=hp["lr"], alpha=hp["alpha"], momentum=hp["momentum"],
                                   eps=hp["eps"], variant=variant, step=t)
    first = got[5] if variant.spread == "recursive" else got[2]  # s or n
    compare(f"core: {variant}", [got[0], first, got[3] if variant.centered else state.g, got[4]],
            [w, state[0], state.g, state.delta])


# -- what a reader meets: file://, keyboard and screen readers, print, screenshots ---------------


def test_explorables_run_from_file_urls_without_other_hosts(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors, elsewhere = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda route: (elsewhere.append(route.request.url), route.abort())
               if not route.request.url.startswith(("file:", "data:")) else route.continue_())
    for path in sorted(set(PAGES.values())):
        page.goto((HTML / path).as_uri(), wait_until="load")
        for name in (n for n, p in PAGES.items() if p == path):
            page.wait_for_selector(f'.gx-explorable[data-explorable="{name}"][data-ready="true"]', timeout=20000)
            result = page.evaluate(f"() => gravesExplorables.instances[{json.dumps(name)}].result()")
            runs = result["paths"].values() if "paths" in result else [[0] + result["averages"]]
            assert all(len(run) == STEPS + 1 for run in runs), f"{name} from file:// computed no full run"
    ctx.close()
    assert not elsewhere, f"requests beyond file://: {elsewhere}"
    assert not errors, f"console errors from file://: {errors}"


@pytest.mark.parametrize("name", list(PAGES))
def test_sliders_are_labelled_and_move_by_keyboard(tab, name):
    open_explorable(tab, name)
    keys = tab.evaluate(f"() => Object.keys(gravesExplorables.instances[{json.dumps(name)}].sliders)")
    for key in keys:
        info = tab.evaluate(
            """([n, k]) => { const i = gravesExplorables.instances[n].sliders[k].input;
               const d = document.getElementById(i.getAttribute('aria-describedby'));
               return {id: i.id, labels: Array.from(i.labels).map(l => l.textContent.trim()),
                       valuetext: i.getAttribute('aria-valuetext'), description: d && d.textContent,
                       value: i.value, max: i.max}; }""",
            [name, key],
        )
        assert len(info["labels"]) == 1 and info["labels"][0], f"{name}/{key}: the slider has no label"
        assert info["valuetext"] and info["description"], f"{name}/{key}: no aria-valuetext or description"
        before = json.dumps(tab.evaluate(f"() => gravesExplorables.instances[{json.dumps(name)}].result().params"))
        slider = tab.locator(f"#{info['id']}")
        slider.focus()
        key_name = "ArrowLeft" if info["value"] == info["max"] else "ArrowRight"
        slider.press(key_name)
        after = tab.evaluate(f"() => gravesExplorables.instances[{json.dumps(name)}].result().params")
        assert json.dumps(after) != before, f"{name}/{key}: {key_name} did not rerun the explorable"
        assert tab.evaluate(f"() => document.getElementById({json.dumps(info['id'])}).getAttribute('aria-valuetext')")
        slider.press("ArrowLeft" if key_name == "ArrowRight" else "ArrowRight")  # back to the default
    assert not tab.errors, tab.errors


def test_print_leaves_the_explorables_out(tab):
    open_explorable(tab, "momentum")
    tab.emulate_media(media="print")
    try:
        assert tab.evaluate("() => getComputedStyle(document.querySelector('.gx-explorable')).display") == "none"
    finally:
        tab.emulate_media(media="screen")


@pytest.mark.parametrize("width", [1280, 390])
def test_screenshots(browser, base_url, width):
    """Saves _build/screenshots/explorable-NAME-WIDTH-light|dark.png; checks nothing overflows the page."""
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    page = ctx.new_page()
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in PAGES.items():
        if page.url != f"{base_url}/{path}":
            page.goto(f"{base_url}/{path}", wait_until="domcontentloaded")
            # the sticky header would lie over a tall explorable in a stitched element screenshot
            page.add_style_tag(content=".bd-header, .bd-header-article { position: static !important; } "
                                        ".skip-link { display: none !important; }")
        root = page.locator(f'.gx-explorable[data-explorable="{name}"][data-ready="true"]')
        root.wait_for(timeout=20000)
        for theme in ("light", "dark"):
            page.evaluate(f"() => {{ document.documentElement.dataset.theme = '{theme}'; "
                          f"document.documentElement.dataset.mode = '{theme}'; }}")
            root.scroll_into_view_if_needed()
            root.screenshot(path=str(SHOTS / f"explorable-{name}-{width}-{theme}.png"))
        box = root.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{name} overflows a {width} px page: {box}"
        wide = page.evaluate(f"""() => Array.from(document.querySelectorAll('.gx-explorable[data-explorable="{name}"] *'))
            .filter(e => (e instanceof HTMLElement || e.tagName === 'svg') && e.getBoundingClientRect().right > {width} + 0.5)
            .map(e => e.tagName + '.' + e.getAttribute('class'))""")
        assert not wide, f"{name}: elements beyond the right edge at {width} px: {wide[:5]}"
    ctx.close()


# -- the marks' labels under the sliders --------------------------------------

SLIDERS = ".gx-explorable .gx-slider input"
# boxes nearer than this touch on the screen: their anti-aliased edges meet
GAP = 2  # CSS px


def expose_thumbs(tab):
    """window.__thumbs[i]: the thumb of the page's i-th slider (SLIDERS).

    Chromium draws a range input's thumb in a user-agent shadow root, out of
    the page's reach; the DevTools protocol reaches it and hands it over, so
    the page measures the thumb that is drawn, not one computed from CSS."""
    cdp = tab.context.new_cdp_session(tab)
    try:
        count = tab.evaluate(
            f"() => document.querySelectorAll({json.dumps(SLIDERS)}).length")
        for i in range(count):
            found = cdp.send("Runtime.evaluate", {"expression": (
                f"document.querySelectorAll({json.dumps(SLIDERS)})[{i}]")})
            node = cdp.send("DOM.describeNode", {
                "objectId": found["result"]["objectId"], "depth": -1,
                "pierce": True})["node"]
            thumb = find_thumb(node)
            assert thumb, f"slider {i}: no thumb in its user-agent shadow root"
            handle = cdp.send("DOM.resolveNode",
                              {"backendNodeId": thumb["backendNodeId"]})
            cdp.send("Runtime.callFunctionOn", {
                "objectId": handle["object"]["objectId"],
                "functionDeclaration":
                    "function (i) { (window.__thumbs ||= [])[i] = this; }",
                "arguments": [{"value": i}]})
    finally:
        cdp.detach()
    return count


def find_thumb(node):
    attrs = node.get("attributes", [])
    if dict(zip(attrs[::2], attrs[1::2])).get("id") == "thumb":
        return node
    for child in node.get("children", []) + node.get("shadowRoots", []):
        found = find_thumb(child)
        if found:
            return found
    return None


# Every slider of every explorable on the page is moved through its positions
# (all of a list; nine of a linear scale) and back to its default.  At each
# position: each shown mark label (its text's box) must lie GAP px or more
# from every thumb, every other label and the controls' headings, inside its
# explorable, at `letters` CSS px or more.  Returns the problems, the labels
# hidden at the default setting, and the least distances seen.
MARK_LABELS = """([sliders, gap, letters]) => {
  const inputs = Array.from(document.querySelectorAll(sliders));
  const text = (e) => { const r = document.createRange();
    r.selectNodeContents(e); return r.getBoundingClientRect(); };
  // how far apart two boxes are; negative when they intersect
  const apart = (a, b) => Math.max(a.left - b.right, b.left - a.right,
                                   a.top - b.bottom, b.top - a.bottom);
  const problems = new Set(), hidden = [];
  const least = {thumb: Infinity, label: Infinity, heading: Infinity};
  const fixed = (x) => x.toFixed(1);
  const check = (root, where) => {
    const name = root.dataset.explorable, edge = root.getBoundingClientRect();
    const say = (what, anywhere) => problems.add(
      anywhere ? `${name}: ${what}` : `${name} (${where}): ${what}`);
    const thumbs = Array.from(root.querySelectorAll('.gx-slider input'))
      .map(i => window.__thumbs[inputs.indexOf(i)].getBoundingClientRect());
    const headings = Array.from(
      root.querySelectorAll('.gx-control-head > *')).map(text);
    const labels = Array.from(root.querySelectorAll('.gx-mark-label'))
      .filter(l => getComputedStyle(l).visibility === 'visible')
      .map(l => ({what: l.textContent, box: text(l),
                  size: parseFloat(getComputedStyle(l).fontSize)}));
    labels.forEach((l, i) => {
      const near = (kind, boxes, whose) => boxes.forEach((b, j) => {
        const d = apart(l.box, b);
        least[kind] = Math.min(least[kind], d);
        if (d < gap) say(`"${l.what}" ${fixed(d)} px from ${whose(j)}`);
      });
      near('thumb', thumbs, j => `thumb ${j + 1}`);
      near('label', labels.slice(i + 1).map(k => k.box),
           j => `"${labels[i + 1 + j].what}"`);
      near('heading', headings, j => `"${root.querySelectorAll(
        '.gx-control-head > *')[j].textContent}"`);
      const b = l.box;
      if (b.left < edge.left || b.right > edge.right || b.top < edge.top
          || b.bottom > edge.bottom) say(`"${l.what}" leaves the explorable`);
      if (l.size < letters) say(`"${l.what}" at ${l.size} px`, true);
    });
  };
  document.querySelectorAll('.gx-explorable').forEach(root => {
    root.querySelectorAll('.gx-mark-label').forEach(l => {
      if (getComputedStyle(l).visibility !== 'visible')
        hidden.push(`${root.dataset.explorable}: "${l.textContent}"`); });
    check(root, 'default');
    root.querySelectorAll('.gx-slider input').forEach(input => {
      const start = input.value, lo = +input.min, hi = +input.max;
      const list = +input.step === 1 && hi - lo <= 20;
      const count = list ? hi - lo : 8;
      for (let k = 0; k <= count; k++) {
        input.value = lo + (hi - lo) * k / count;
        input.dispatchEvent(new Event('input'));
        check(root, input.getAttribute('aria-valuetext'));
      }
      input.value = start;
      input.dispatchEvent(new Event('input'));
    });
  });
  return {problems: Array.from(problems), hidden, least};
}"""


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP],
                         ids=lambda v: f"{v['width']}px")
def test_mark_labels_clear_of_thumbs_and_each_other(browser, base_url,
                                                     viewport, mode):
    """On a phone and on the desktop, in light and dark mode."""
    letters = PHONE_LETTERS if viewport is PHONE else DESKTOP_LETTERS
    width, problems, least = viewport["width"], [], {}
    for path in sorted(set(PAGES.values())):
        ctx, tab = open_page(browser, base_url, path, viewport, mode)
        try:
            for name in (n for n, p in PAGES.items() if p == path):
                tab.wait_for_selector(f'.gx-explorable[data-explorable='
                                      f'"{name}"][data-ready="true"]')
            assert expose_thumbs(tab), f"{path}: no slider to check"
            settle(tab)
            found = tab.evaluate(MARK_LABELS, [SLIDERS, GAP, letters])
            assert not tab.errors, tab.errors
        finally:
            ctx.close()
        least[path] = {k: round(v, 1) for k, v in found["least"].items()}
        assert least[path]["thumb"] < float("inf"), f"{path}: no label shown"
        problems += [f"hidden by a neighbour: {h}" for h in found["hidden"]]
        problems += found["problems"]
    assert not problems, (
        f"at {width} px, {mode}: least distances in px {least}\n"
        + "\n".join(problems[:30]))
