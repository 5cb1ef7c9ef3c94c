/* The book's explorables: sliders that rerun an optimizer in the page.
 *
 * Every update goes through the step functions of core.js (window.gravesCore),
 * the transcription of graves.core; this file only sets up problems, draws
 * and labels.  A page holds an explorable as
 *     <div class="gx-explorable" data-explorable="NAME"></div>
 * and this script builds its controls and plots.  Each explorable exposes its
 * last run as window.gravesExplorables.instances[NAME].result() (parameters,
 * problem and trajectories), which tests/site/test_explorables.py compares
 * with graves.  Plain SVG and a classic script: it works from file:// and
 * without any other host.
 */
(function () {
  "use strict";

  var SVGNS = "http://www.w3.org/2000/svg";
  var uid = 0;

  function el(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }

  function svg(tag, attrs, parent) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function fmt(x, digits) {
    if (!isFinite(x)) return x > 0 ? "∞" : (x < 0 ? "−∞" : "NaN");
    var a = Math.abs(x);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(digits === undefined ? 2 : digits).replace("-", "−");
    return x.toFixed(digits === undefined ? 3 : digits).replace("-", "−");
  }

  // ---------------------------------------------------------------- sliders

  // A labelled range input.  spec: {label, help, min, max, step, value} for a
  // linear slider, or {values: ["1e-4", ...], value: "1e-4"} for one that
  // steps through a list (log-like scales without Math.pow: the numbers are
  // parsed from their decimal strings, as Python's float() parses them).
  // spec.marks(current values) returns [{value, label, title}] drawn under
  // the track and read out to screen readers.
  function Slider(parent, spec, onInput) {
    var id = "gx-" + (++uid);
    var box = el("div", { "class": "gx-control" }, parent);
    var head = el("div", { "class": "gx-control-head" }, box);
    el("label", { "for": id }, head, spec.label);
    this.output = el("output", { "for": id, "class": "gx-value" }, head);
    var wrap = el("div", { "class": "gx-slider" }, box);
    var input = el("input", { type: "range", id: id }, wrap);
    if (spec.values) {
      this.values = spec.values;
      input.min = 0;
      input.max = spec.values.length - 1;
      input.step = 1;
      input.value = Math.max(0, spec.values.indexOf(spec.value));
    } else {
      input.min = spec.min;
      input.max = spec.max;
      input.step = spec.step;
      input.value = spec.value;
    }
    this.min = spec.values ? 0 : parseFloat(spec.min);
    this.max = spec.values ? spec.values.length - 1 : parseFloat(spec.max);
    this.marksBox = el("div", { "class": "gx-marks", "aria-hidden": "true" }, wrap);
    this.desc = el("p", { "class": "gx-sr-only", id: id + "-desc" }, box);
    input.setAttribute("aria-describedby", id + "-desc");
    this.input = input;
    this.spec = spec;
    var self = this;
    input.addEventListener("input", function () { onInput(self); });
  }

  Slider.prototype.value = function () {
    return this.values ? parseFloat(this.values[parseInt(this.input.value, 10)]) : parseFloat(this.input.value);
  };

  Slider.prototype.text = function () {
    return this.values ? this.values[parseInt(this.input.value, 10)] : this.input.value;
  };

  // position (0..1) of a value along the track
  Slider.prototype.fraction = function (v) {
    if (this.values) { // between the listed values, by position in the list
      var nums = this.values.map(parseFloat);
      for (var i = 0; i < nums.length - 1; i++) {
        if (v <= nums[i + 1]) {
          var f = (v - nums[i]) / (nums[i + 1] - nums[i]);
          return Math.max(0, (i + Math.max(0, f)) / (nums.length - 1));
        }
      }
      return 1;
    }
    return (v - this.min) / (this.max - this.min);
  };

  Slider.prototype.update = function (context) {
    var spec = this.spec, shown = this.text();
    this.context = context;
    this.output.textContent = spec.format ? spec.format(this.value()) : shown;
    this.input.setAttribute("aria-valuetext", spec.valuetext ? spec.valuetext(this.value()) : shown);
    var marks = spec.marks ? spec.marks(context) : [];
    this.marksBox.textContent = "";
    var said = [];
    for (var i = 0; i < marks.length; i++) {
      var m = marks[i], f = this.fraction(m.value);
      if (!(f >= 0 && f <= 1)) continue;
      var tick = el("span", { "class": "gx-mark" + (m.cls ? " " + m.cls : ""), title: m.title || "" }, this.marksBox);
      tick.style.setProperty("--gx-pos", f.toFixed(4));
      el("span", { "class": "gx-mark-label" + (f > 0.75 ? " gx-right" : f < 0.2 ? " gx-left" : "") }, tick, m.label);
      said.push(m.title || m.label);
    }
    // a label that would overlap an earlier one is left out (its tick stays; screen readers get all)
    var labels = this.marksBox.querySelectorAll(".gx-mark-label"), kept = [];
    for (var j = 0; j < labels.length; j++) {
      var box = labels[j].getBoundingClientRect();
      var clash = kept.some(function (k) { return box.left < k.right + 4 && k.left < box.right + 4; });
      if (clash) labels[j].style.visibility = "hidden";
      else kept.push(box);
    }
    this.desc.textContent = (spec.help ? spec.help + " " : "") + (said.length ? "Marks: " + said.join("; ") + "." : "");
  };

  // ------------------------------------------------------------------ plots

  // An SVG chart with fixed-size coordinates (scaled by CSS to the width).
  function Plot(parent, o) {
    this.W = o.width || 360;
    this.H = o.height || 240;
    this.m = { l: 52, r: 10, t: o.title ? 24 : 10, b: 38 };
    this.logY = !!o.logY;
    this.x = o.x;
    this.y = o.y;
    var fig = el("figure", { "class": "gx-plot" }, parent);
    this.svg = svg("svg", { viewBox: "0 0 " + this.W + " " + this.H, role: "img" }, fig);
    var title = svg("title", {}, this.svg);
    title.textContent = o.alt || o.title || "";
    var clip = "gx-clip-" + (++uid);
    var defs = svg("defs", {}, this.svg);
    var cp = svg("clipPath", { id: clip }, defs);
    svg("rect", { x: this.m.l, y: this.m.t, width: this.W - this.m.l - this.m.r, height: this.H - this.m.t - this.m.b }, cp);
    this.axes = svg("g", { "class": "gx-axes" }, this.svg);
    this.layer = svg("g", { "clip-path": "url(#" + clip + ")" }, this.svg);
    if (o.title) svg("text", { x: this.m.l, y: 15, "class": "gx-title" }, this.svg).textContent = o.title;
    this.drawAxes(o);
  }

  Plot.prototype.px = function (x) {
    return this.m.l + (x - this.x[0]) / (this.x[1] - this.x[0]) * (this.W - this.m.l - this.m.r);
  };

  Plot.prototype.py = function (y) {
    var lo = this.y[0], hi = this.y[1];
    var f = this.logY ? (Math.log(y) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)) : (y - lo) / (hi - lo);
    return this.H - this.m.b - f * (this.H - this.m.t - this.m.b);
  };

  function niceTicks(lo, hi, n) {
    var span = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log(span) / Math.LN10)), step = mag;
    [1, 2, 5, 10].some(function (k) { step = k * mag; return span <= step; });
    var ticks = [];
    for (var t = Math.ceil(lo / step - 1e-9) * step; t <= hi + 1e-9 * step; t += step) ticks.push(Math.abs(t) < 1e-12 * step ? 0 : t);
    return ticks;
  }

  Plot.prototype.drawAxes = function (o) {
    var a = this.axes, self = this;
    a.textContent = "";
    var x0 = this.m.l, x1 = this.W - this.m.r, y0 = this.m.t, y1 = this.H - this.m.b;
    svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, "class": "gx-frame" }, a);
    (o.xticks || niceTicks(this.x[0], this.x[1], 5)).forEach(function (t) {
      var X = self.px(t);
      svg("line", { x1: X, x2: X, y1: y1, y2: y1 + 4, "class": "gx-tick" }, a);
      svg("text", { x: X, y: y1 + 15, "class": "gx-ticklabel", "text-anchor": "middle" }, a).textContent = fmt(t, Math.abs(t) < 10 && t % 1 ? 1 : 0);
    });
    var yt;
    if (this.logY) {
      yt = [];
      var e0 = Math.ceil(Math.log(this.y[0]) / Math.LN10 - 1e-9), e1 = Math.floor(Math.log(this.y[1]) / Math.LN10 + 1e-9);
      var every = Math.max(1, Math.ceil((e1 - e0) / 5));
      for (var e = e0; e <= e1; e += every) yt.push(e);
      yt.forEach(function (e) {
        var Y = self.py(Math.pow(10, e));
        svg("line", { x1: x0 - 4, x2: x0, y1: Y, y2: Y, "class": "gx-tick" }, a);
        svg("text", { x: x0 - 6, y: Y + 4, "class": "gx-ticklabel", "text-anchor": "end" }, a).textContent = e === 0 ? "1" : "1e" + String(e).replace("-", "−");
      });
    } else {
      (o.yticks || niceTicks(this.y[0], this.y[1], 4)).forEach(function (t) {
        var Y = self.py(t);
        svg("line", { x1: x0 - 4, x2: x0, y1: Y, y2: Y, "class": "gx-tick" }, a);
        svg("text", { x: x0 - 6, y: Y + 4, "class": "gx-ticklabel", "text-anchor": "end" }, a).textContent = fmt(t, Math.abs(t) < 10 && t % 1 ? (Math.abs(t * 10) % 1 ? 2 : 1) : 0);
      });
    }
    if (o.xlabel) svg("text", { x: (x0 + x1) / 2, y: this.H - 4, "class": "gx-axislabel", "text-anchor": "middle" }, a).textContent = o.xlabel;
    if (o.ylabel) {
      var t = svg("text", { x: 0, y: 0, "class": "gx-axislabel", "text-anchor": "middle", transform: "translate(12," + (y0 + y1) / 2 + ") rotate(-90)" }, a);
      t.textContent = o.ylabel;
    }
  };

  Plot.prototype.clear = function () { this.layer.textContent = ""; };

  // clamp far-off points (a diverging run) to a range SVG draws reliably
  function clampPx(v) { return Math.max(-1e4, Math.min(1e4, v)); }

  // points: [[x, y], ...]; non-finite points (or y <= 0 on a log axis) break the line
  Plot.prototype.line = function (points, cls, dots) {
    var d = "", pen = false, self = this;
    points.forEach(function (p) {
      var ok = isFinite(p[0]) && isFinite(p[1]) && (!self.logY || p[1] > 0);
      if (!ok) { pen = false; return; }
      var X = clampPx(self.px(p[0])), Y = clampPx(self.py(p[1]));
      d += (pen ? "L" : "M") + X.toFixed(2) + " " + Y.toFixed(2);
      pen = true;
      if (dots) svg("circle", { cx: X.toFixed(2), cy: Y.toFixed(2), r: 1.6, "class": cls + " gx-dot" }, self.layer);
    });
    svg("path", { d: d, "class": "gx-line " + cls }, this.layer);
  };

  Plot.prototype.hline = function (y, cls) { this.line([[this.x[0], y], [this.x[1], y]], cls); };
  Plot.prototype.vline = function (x, cls) {
    var lo = this.logY ? this.y[0] : this.y[0], hi = this.y[1];
    this.line([[x, lo], [x, hi]], cls);
  };

  Plot.prototype.marker = function (x, y, cls, r) {
    svg("circle", { cx: clampPx(this.px(x)), cy: clampPx(this.py(y)), r: r || 3.5, "class": cls }, this.layer);
  };

  Plot.prototype.ellipse = function (rx, ry, cls) {
    var sx = (this.W - this.m.l - this.m.r) / (this.x[1] - this.x[0]);
    var sy = (this.H - this.m.t - this.m.b) / (this.y[1] - this.y[0]);
    svg("ellipse", { cx: this.px(0), cy: this.py(0), rx: rx * sx, ry: ry * sy, "class": cls }, this.layer);
  };

  function legend(parent, items) {
    var ul = el("ul", { "class": "gx-legend" }, parent);
    items.forEach(function (it) {
      var li = el("li", {}, ul);
      el("span", { "class": "gx-swatch " + it[0], "aria-hidden": "true" }, li);
      li.appendChild(document.createTextNode(it[1]));
    });
    return ul;
  }

  // Scaffolding shared by the explorables: title, controls, plots, readout.
  function frame(root, title, intro) {
    root.textContent = "";
    root.setAttribute("role", "group");
    var h = el("p", { "class": "gx-heading", id: "gx-" + (++uid) }, root, title);
    root.setAttribute("aria-labelledby", h.id);
    if (intro) el("p", { "class": "gx-intro" }, root, intro);
    return {
      controls: el("div", { "class": "gx-controls" }, root),
      plots: el("div", { "class": "gx-plots" }, root),
      readout: el("p", { "class": "gx-readout", "aria-live": "polite" }, root),
    };
  }

  function vec(values) { return Float64Array.from(values); }
  function copy(a) { return Array.prototype.slice.call(a); }

  // Gradients of sum_i h_i w_i^2 / 2 plus noise: grad_i = h_i * w_i + sigma * xi_i.
  function quadraticGradient(h, w, sigma, xi) {
    var grad = new Float64Array(w.length);
    for (var i = 0; i < w.length; i++) grad[i] = xi ? h[i] * w[i] + sigma * xi[i] : h[i] * w[i];
    return grad;
  }

  function loss(h, w) {
    var s = 0;
    for (var i = 0; i < w.length; i++) s += 0.5 * h[i] * w[i] * w[i];
    return s;
  }

  var G = window.gravesCore;
  var builders = {};

  // ------------------------------------------- chapter 1: GD and momentum

  builders.momentum = function (root) {
    var H = [0.01, 1.0], W0 = [-10.0, 1.0], STEPS = 200;
    var f = frame(root, "Explore: gradient descent and heavy-ball momentum on the ravine",
      "Both runs use the learning rate η; the heavy ball adds momentum μ. Marks under the sliders are the " +
      "stability limits of the 1-D analysis for the steep direction, λmax = 1.");
    var sliders = [];
    var update = function () { run(); };
    var lr = new Slider(f.controls, {
      label: "learning rate η", min: "0.05", max: "4", step: "0.01", value: "1.8",
      help: "Learning rate eta of both runs.",
      format: function (v) { return v.toFixed(2); },
      valuetext: function (v) {
        return "eta " + v.toFixed(2) + (v * H[1] < 2 ? ", plain descent stable" : ", plain descent diverges");
      },
      marks: function (c) {
        return [
          { value: 2 / H[1], label: "2/λmax", title: "plain descent is stable below η = 2/λmax = 2" },
          { value: 2 * (1 + c.mu) / H[1], label: "2(1+μ)/λmax", cls: "gx-mark-2",
            title: "the heavy ball with μ = " + c.mu.toFixed(2) + " is stable below η = 2(1+μ)/λmax = " + (2 * (1 + c.mu)).toFixed(2) },
        ];
      },
    }, update);
    var mu = new Slider(f.controls, {
      label: "momentum μ", min: "0", max: "0.99", step: "0.01", value: "0.9",
      help: "Momentum coefficient mu of the heavy ball.",
      format: function (v) { return v.toFixed(2); },
      valuetext: function (v) { return "mu " + v.toFixed(2); },
      marks: function (c) {
        var out = [];
        var stable = c.lr * H[1] / 2 - 1; // eta lambda < 2 (1 + mu)
        if (stable > 0) out.push({ value: stable, label: "stable", title: "the heavy ball is stable above μ = ηλmax/2 − 1 = " + stable.toFixed(2) });
        var spiral = Math.max.apply(null, H.map(function (l) { var r = 1 - Math.sqrt(c.lr * l); return r * r; }));
        if (spiral < 1) out.push({ value: spiral, label: "√μ", cls: "gx-mark-2",
          title: "above μ = " + spiral.toFixed(3) + " both directions have complex roots and shrink by √μ per step" });
        return out;
      },
    }, update);
    sliders.push(lr, mu);
    var traj = new Plot(f.plots, { x: [-12, 12], y: [-1.6, 1.6], xticks: [-10, -5, 0, 5, 10], yticks: [-1, 0, 1],
      xlabel: "w₁ (floor, λmin = 0.01)", ylabel: "w₂ (walls, λmax = 1)", title: "Trajectories over the contours of L",
      alt: "Trajectories of plain descent and the heavy ball in the ravine" });
    var lossPlot = new Plot(f.plots, { x: [0, STEPS], y: [1e-16, 1e4], logY: true, xlabel: "step t",
      ylabel: "L(w_t) / L(w_0)", title: "Loss", alt: "Loss against step for both runs, log scale" });
    legend(root, [["gx-c1", "plain descent (μ = 0)"], ["gx-c2", "heavy ball (μ from the slider)"]]);
    root.appendChild(f.readout);
    var last;

    function trajectory(lrValue, momentum) {
      var w = vec(W0), state = { velocity: new Float64Array(2) }, path = [copy(w)];
      for (var t = 0; t < STEPS; t++) {
        G.sgdStep(w, quadraticGradient(H, w), state, lrValue, momentum);
        path.push(copy(w));
      }
      return path;
    }

    function factor(x, b) { // largest |z| of z^2 - (1 + b - x) z + b (chapter 1's `rate`)
      var a = 1 + b - x, disc = a * a - 4 * b;
      if (disc < 0) return Math.sqrt(b);
      return Math.max(Math.abs((a + Math.sqrt(disc)) / 2), Math.abs((a - Math.sqrt(disc)) / 2));
    }

    function run() {
      var c = { lr: lr.value(), mu: mu.value() };
      sliders.forEach(function (s) { s.update(c); });
      var paths = { plain: trajectory(c.lr, 0), heavy: trajectory(c.lr, c.mu) };
      last = { params: { lr: c.lr, momentum: c.mu }, problem: { h: H, w0: W0, steps: STEPS }, paths: paths };
      traj.clear();
      [1e-3, 4e-3, 0.015, 0.05, 0.15, 0.5, 1.2, 3].forEach(function (L) {
        traj.ellipse(Math.sqrt(2 * L / H[0]), Math.sqrt(2 * L / H[1]), "gx-contour");
      });
      lossPlot.clear();
      var L0 = loss(H, W0);
      lossPlot.hline(1e-8, "gx-ref");
      [["plain", "gx-c1"], ["heavy", "gx-c2"]].forEach(function (p) {
        traj.line(paths[p[0]], p[1], true);
        lossPlot.line(paths[p[0]].map(function (w, t) { return [t, loss(H, w) / L0]; }), p[1]);
      });
      traj.marker(W0[0], W0[1], "gx-start");
      traj.marker(0, 0, "gx-min", 2.5);
      var fp = Math.max(factor(c.lr * H[0], 0), factor(c.lr * H[1], 0));
      var fh = Math.max(factor(c.lr * H[0], c.mu), factor(c.lr * H[1], c.mu));
      var end = function (p) { return fmt(loss(H, paths[p][STEPS]) / L0, 2); };
      f.readout.textContent = "Factor per step (largest |z|): plain descent " + fmt(fp, 4) + ", heavy ball " + fmt(fh, 4) +
        (fh > 1 || fp > 1 ? " (above 1: diverges)" : "") + ". Loss after " + STEPS + " steps, relative to the start: plain " +
        end("plain") + ", heavy ball " + end("heavy") + ".";
    }
    run();
    return { result: function () { return last; }, sliders: { lr: lr, momentum: mu } };
  };

  // --------------------------------------------------- chapter 2: the EWMA

  builders.ewma = function (root) {
    var STEPS = 200, JUMP = 100, SEED = 2, NOISE = 0.3;
    var f = frame(root, "Explore: the weights and the start-up bias of a moving average",
      "One average, updated by ema_update, of three inputs: a single 1 at t = 1 (what it leaves after j steps is the " +
      "weight of age j), the constant 1 (its average is the sum of the weights) and a noisy step.");
    var rho = new Slider(f.controls, {
      label: "decay ρ (ρ in Graves' update)", min: "0.5", max: "0.995", step: "0.005", value: "0.95",
      help: "Decay rho of the moving average.",
      format: function (v) { return v.toFixed(3); },
      valuetext: function (v) { return "rho " + v.toFixed(3) + ", window " + fmt(1 / (1 - v), 1) + " steps"; },
      marks: function () {
        return [{ value: 0.95, label: "ρ = 0.95", cls: "gx-mark-2", title: "Graves' ρ = 0.95" }];
      },
    }, function () { run(); });
    var wplot = new Plot(f.plots, { x: [0, STEPS], y: [0, 0.06], xlabel: "age j = t − k (steps)", ylabel: "weight",
      title: "Weight (1−ρ)ρʲ of an input of age j", alt: "Weights against age, with the effective window" });
    var splot = new Plot(f.plots, { x: [0, STEPS], y: [0, 1.05], yticks: [0, 0.25, 0.5, 0.75, 1], xlabel: "step t",
      ylabel: "sum of the weights", title: "Start-up bias: the weights sum to 1 − ρᵗ", alt: "Sum of the weights against step" });
    var nplot = new Plot(f.plots, { x: [0, STEPS], y: [0, 3.2], xlabel: "step t", ylabel: "value",
      title: "A noisy step, averaged", alt: "Noisy input, its moving average and the bias-corrected average" });
    legend(root, [["gx-c0", "input xₜ"], ["gx-c1", "average aₜ (from 0)"], ["gx-c2", "corrected âₜ = aₜ / (1 − ρᵗ)"], ["gx-c3", "1 − ρᵗ; window 1/(1−ρ)"]]);
    root.appendChild(f.readout);

    var noise = G.noiseSource(SEED), signal = [];
    for (var t = 1; t <= STEPS; t++) signal.push((t <= JUMP ? 1 : 2) + NOISE * noise());
    var last;

    function run() {
      var r = rho.value();
      rho.update({});
      var avg = new Float64Array(3), series = [];
      for (var t = 1; t <= STEPS; t++) {
        G.emaUpdate(avg, vec([t === 1 ? 1 : 0, 1, signal[t - 1]]), r);
        series.push(copy(avg));
      }
      var weights = series.map(function (a) { return a[0]; }); // weight of age j = t - 1
      var sums = series.map(function (a) { return a[1]; });
      var corrected = series.map(function (a) { return a[2] / a[1]; });
      last = { params: { decay: r }, problem: { steps: STEPS, jump: JUMP, seed: SEED, noise: NOISE, inputs: signal },
        averages: series, corrected: corrected };
      var window_ = 1 / (1 - r);
      wplot.y = [0, (1 - r) * 1.15];
      wplot.drawAxes({ xlabel: "age j = t − k (steps)", ylabel: "weight" });
      wplot.clear();
      wplot.line([[0, 1 - r], [window_, 1 - r], [window_, 0]], "gx-c3 gx-dotted");
      wplot.line(weights.map(function (v, j) { return [j, v]; }), "gx-c1");
      splot.clear();
      splot.hline(1 - 1 / Math.E, "gx-ref");
      splot.line(sums.map(function (v, j) { return [j + 1, v]; }), "gx-c3");
      if (window_ <= STEPS) splot.marker(Math.round(window_), sums[Math.round(window_) - 1], "gx-c3 gx-fill");
      nplot.clear();
      nplot.line(signal.map(function (v, j) { return [j + 1, v]; }).filter(function (_, j) { return true; }), "gx-c0 gx-thin");
      nplot.line(series.map(function (a, j) { return [j + 1, a[2]]; }), "gx-c1");
      nplot.line(corrected.map(function (v, j) { return [j + 1, v]; }), "gx-c2 gx-dashed");
      if (JUMP + window_ <= STEPS) nplot.vline(JUMP + window_, "gx-c3 gx-dotted");
      var k = Math.round(window_);
      f.readout.textContent = "Effective window 1/(1−ρ) = " + fmt(window_, 1) + " steps" +
        (k <= STEPS ? "; the last " + k + " inputs carry " + fmt(sums[k - 1], 4) + " of the weight" : "") +
        "; the missing weight ρᵗ (the start-up bias) falls below 1 % after " + fmt(Math.log(0.01) / Math.log(r), 1) +
        " steps. After " + STEPS + " steps the weights sum to " + fmt(sums[STEPS - 1], 4) + ".";
    }
    run();
    return { result: function () { return last; }, sliders: { decay: rho } };
  };

  // ------------------------------ chapter 4: plain and centered RMSprop

  builders.centered = function (root) {
    var H = [1.0, 0.1], W0 = [1.0, 2.0], LR = 0.005, STEPS = 200, SEED = 4;
    var f = frame(root, "Explore: plain and centered RMSprop on a noisy quadratic",
      "Gradient ∇ = (w₁, 0.1 w₂) + σ ξₜ with seeded noise ξₜ, η = 0.005, no momentum; both optimizers see the same noise. " +
      "Only the denominator differs: √(n + ε) for plain RMSprop, √(n − g² + ε) for Graves.");
    var sliders = [];
    var again = function () { run(); };
    var rho = new Slider(f.controls, {
      label: "decay ρ", values: ["0.5", "0.8", "0.9", "0.95", "0.98", "0.99", "0.995", "0.999"], value: "0.95",
      help: "Decay rho of both averages.", valuetext: function (v) { return "rho " + v; },
      marks: function () { return [{ value: 0.95, label: "0.95", title: "Graves' ρ = 0.95" }]; },
    }, again);
    var eps = new Slider(f.controls, {
      label: "stabilizer ε", values: ["1e-8", "1e-7", "1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1", "1"], value: "1e-4",
      help: "Stabilizer epsilon under the root.", valuetext: function (v) { return "epsilon " + v.toExponential(0); },
      marks: function (c) {
        return c.sigma > 0 ? [{ value: c.sigma * c.sigma, label: "σ²", cls: "gx-mark-2", title: "ε = σ²: above it ε dominates the spread" }] : [];
      },
    }, again);
    var sigma = new Slider(f.controls, {
      label: "noise σ", values: ["0", "0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"], value: "0.01",
      help: "Standard deviation sigma of the gradient noise.", valuetext: function (v) { return "sigma " + v; },
      marks: function (c) {
        var r = Math.sqrt(c.eps);
        return r <= 1 ? [{ value: r, label: "√ε", cls: "gx-mark-2", title: "σ = √ε: below it the gradient counts as consistent" }] : [];
      },
    }, again);
    sliders.push(rho, eps, sigma);
    var opts = { x: [-1.2, 1.2], y: [-0.8, 2.2], xticks: [-1, 0, 1], yticks: [0, 1, 2], xlabel: "w₁ (λ = 1)", ylabel: "w₂ (λ = 0.1)" };
    var p1 = new Plot(f.plots, Object.assign({ title: "plain RMSprop", alt: "Trajectory of plain RMSprop" }, opts));
    var p2 = new Plot(f.plots, Object.assign({ title: "centered (Graves, μ = 0)", alt: "Trajectory of centered RMSprop" }, opts));
    var lp = new Plot(f.plots, { x: [0, STEPS], y: [1e-8, 10], logY: true, xlabel: "step t", ylabel: "L(w_t)",
      title: "Loss", alt: "Loss of both optimizers against step" });
    var rp = new Plot(f.plots, { x: [0, STEPS], y: [1e-3, 1e3], logY: true, xlabel: "step t", ylabel: "step / ∇ on w₂",
      title: "Rate η/d: the step per unit gradient", alt: "Step per unit gradient along w2 for both optimizers" });
    legend(root, [["gx-c1", "plain RMSprop"], ["gx-c2", "centered RMSprop (Graves)"], ["gx-c3", "bound η/√ε"], ["gx-c0", "η/σ"]]);
    root.appendChild(f.readout);
    var last;

    function runOne(kind, c, xi) {
      var w = vec(W0), path = [copy(w)], rates = [];
      var state = kind === "plain" ? { n: new Float64Array(2) } : { n: new Float64Array(2), g: new Float64Array(2), delta: new Float64Array(2) };
      for (var t = 0; t < STEPS; t++) {
        var grad = quadraticGradient(H, w, c.sigma, xi[t]), before = w[1];
        if (kind === "plain") G.rmspropStep(w, grad, state, LR, c.alpha, c.eps);
        else G.gravesStep(w, grad, state, LR, c.alpha, 0, c.eps);
        path.push(copy(w));
        rates.push((before - w[1]) / grad[1]); // lr / d along w2, read off the step
      }
      return { path: path, rates: rates };
    }

    function run() {
      var c = { alpha: rho.value(), eps: eps.value(), sigma: sigma.value() };
      sliders.forEach(function (s) { s.update(c); });
      var noise = G.noiseSource(SEED), xi = [];
      for (var t = 0; t < STEPS; t++) xi.push([noise(), noise()]);
      var plain = runOne("plain", c, xi), centered = runOne("centered", c, xi);
      last = { params: { lr: LR, alpha: c.alpha, eps: c.eps, sigma: c.sigma },
        problem: { h: H, w0: W0, steps: STEPS, seed: SEED, noise: xi },
        paths: { plain: plain.path, centered: centered.path } };
      [[p1, plain, "gx-c1"], [p2, centered, "gx-c2"]].forEach(function (p) {
        p[0].clear();
        [0.01, 0.05, 0.15, 0.35, 0.7, 1.2].forEach(function (L) { p[0].ellipse(Math.sqrt(2 * L / H[0]), Math.sqrt(2 * L / H[1]), "gx-contour"); });
        p[0].line(p[1].path, p[2], true);
        p[0].marker(W0[0], W0[1], "gx-start");
        p[0].marker(0, 0, "gx-min", 2.5);
      });
      lp.clear();
      rp.clear();
      rp.hline(LR / Math.sqrt(c.eps), "gx-c3 gx-dashed");
      if (c.sigma > 0) rp.hline(LR / c.sigma, "gx-c0 gx-dotted");
      [[plain, "gx-c1"], [centered, "gx-c2"]].forEach(function (p) {
        lp.line(p[0].path.map(function (w, t) { return [t, loss(H, w)]; }), p[1]);
        rp.line(p[0].rates.map(function (v, t) { return [t + 1, v]; }), p[1]);
      });
      var mean = function (a) { var s = 0; for (var i = STEPS - 50; i < STEPS; i++) s += a[i]; return s / 50; };
      f.readout.textContent = "Loss after " + STEPS + " steps: plain " + fmt(loss(H, plain.path[STEPS]), 2) + ", centered " +
        fmt(loss(H, centered.path[STEPS]), 2) + ". Mean rate η/d along w₂ over the last 50 steps: plain " + fmt(mean(plain.rates), 3) +
        ", centered " + fmt(mean(centered.rates), 3) + " (bound η/√ε = " + fmt(LR / Math.sqrt(c.eps), 3) + ").";
    }
    run();
    return { result: function () { return last; }, sliders: { alpha: rho, eps: eps, sigma: sigma } };
  };

  // --------------------- chapter 7: placement of the learning rate and of eps

  var CHAINER = G.GRAVES; // eps in the root, lr inside the buffer
  var TORCH = { epsInSqrt: false, lrInBuffer: false, nesterov: false, biasCorrection: false, centered: true,
                spread: "difference" };

  // A fixed gradient stream 1 + sigma * xi_t (not depending on w), steps 1..STEPS;
  // the learning rate is multiplied by `drop` before step DROP + 1.
  function libraryRun(variant, hp, stream, drop, dropAt) {
    var w = new Float64Array(1), state = { n: new Float64Array(1), g: new Float64Array(1), delta: new Float64Array(1) };
    var lr = hp.lr, path = [0];
    for (var t = 0; t < stream.length; t++) {
      if (t === dropAt) lr = lr * drop;
      G.centeredRmspropStep(w, vec([stream[t]]), state, lr, hp.alpha, hp.momentum, hp.eps, variant, t + 1);
      path.push(w[0]);
    }
    return path;
  }

  function stream(seed, sigma, steps) {
    var noise = G.noiseSource(seed), s = [];
    for (var t = 0; t < steps; t++) s.push(1 + sigma * noise());
    return s;
  }

  builders["lr-drop"] = function (root) {
    var STEPS = 200, DROP_AT = 100, LR = 1e-3, ALEPH = 0.95, SIGMA = 0.5, SEED = 9;
    var f = frame(root, "Explore: one drop of η, inside and outside the momentum buffer",
      "Chainer (η inside Δ) and PyTorch (η outside its buffer) with ε = 0, ρ = 0.95, on the fixed stream ∇ₜ = 1 + 0.5 ξₜ; " +
      "η = 10⁻³ is multiplied by the factor before step " + (DROP_AT + 1) + ".");
    var sliders = [];
    var again = function () { run(); };
    var factor = new Slider(f.controls, {
      label: "factor η′/η", values: ["0.01", "0.03", "0.1", "0.3", "0.5", "1", "2", "3", "10"], value: "0.1",
      help: "Factor applied to the learning rate eta at the change; above 1 a warm-up.",
      valuetext: function (v) { return "learning rate times " + v; },
      marks: function () { return [{ value: 1, label: "no change" }]; },
    }, again);
    var mu = new Slider(f.controls, {
      label: "momentum μ", min: "0", max: "0.99", step: "0.01", value: "0.9",
      help: "Momentum coefficient mu of both.", format: function (v) { return v.toFixed(2); },
      valuetext: function (v) { return "mu " + v.toFixed(2); },
      marks: function () { return [{ value: 0.9, label: "Graves' 0.9" }]; },
    }, again);
    sliders.push(factor, mu);
    var sp = new Plot(f.plots, { x: [DROP_AT - 20, DROP_AT + 60], y: [0, 0.02], xlabel: "step t", ylabel: "step −(wₜ − wₜ₋₁)",
      title: "The step around the change", alt: "Step size of both around the learning-rate change" });
    var wp = new Plot(f.plots, { x: [0, STEPS], y: [0, 3], xlabel: "step t", ylabel: "w",
      title: "The parameter", alt: "Parameter of both against step" });
    legend(root, [["gx-c1", "Chainer: η inside Δ"], ["gx-c2 gx-dashed", "PyTorch: η outside the buffer"]]);
    root.appendChild(f.readout);
    var grads = stream(SEED, SIGMA, STEPS), last;

    function run() {
      var c = { drop: factor.value(), momentum: mu.value() };
      sliders.forEach(function (s) { s.update(c); });
      var hp = { lr: LR, alpha: ALEPH, momentum: c.momentum, eps: 0 };
      var paths = { chainer: libraryRun(CHAINER, hp, grads, c.drop, DROP_AT), torch: libraryRun(TORCH, hp, grads, c.drop, DROP_AT) };
      last = { params: { lr: LR, alpha: ALEPH, momentum: c.momentum, eps: 0, drop: c.drop, drop_at: DROP_AT },
        problem: { steps: STEPS, seed: SEED, sigma: SIGMA, stream: grads }, paths: paths };
      var stepsOf = function (p) { return p.slice(1).map(function (w, t) { return [t + 1, -(w - p[t])]; }); };
      var top = 0;
      ["chainer", "torch"].forEach(function (k) { stepsOf(paths[k]).forEach(function (s) { if (s[0] > DROP_AT - 20 && s[0] <= DROP_AT + 60) top = Math.max(top, s[1]); }); });
      sp.y = [0, top * 1.1 || 1];
      sp.drawAxes({ xlabel: "step t", ylabel: "step −(wₜ − wₜ₋₁)" });
      var wmin = Math.min(paths.chainer[STEPS], paths.torch[STEPS], -1e-9);
      wp.y = [wmin * 1.1, 0];
      wp.drawAxes({ xlabel: "step t", ylabel: "w" });
      sp.clear();
      wp.clear();
      sp.vline(DROP_AT + 0.5, "gx-ref");
      wp.vline(DROP_AT, "gx-ref");
      [["chainer", "gx-c1"], ["torch", "gx-c2 gx-dashed"]].forEach(function (p) {
        sp.line(stepsOf(paths[p[0]]), p[1], true);
        wp.line(paths[p[0]].map(function (w, t) { return [t, w]; }), p[1]);
      });
      var deltaBefore = paths.chainer[DROP_AT] - paths.chainer[DROP_AT - 1];
      var predicted = c.momentum / (1 - c.momentum) * (1 - c.drop) * deltaBefore;
      f.readout.textContent = "At step " + STEPS + ", w(Chainer) − w(PyTorch) = " + fmt(paths.chainer[STEPS] - paths.torch[STEPS], 4) +
        "; the chapter predicts μ/(1−μ)·(1 − η′/η)·Δ = " + fmt(predicted, 4) + ", with Δ the last step before the change. " +
        "PyTorch's step changes at once, Chainer's approaches the new size by the factor μ per step.";
    }
    run();
    return { result: function () { return last; }, sliders: { drop: factor, momentum: mu } };
  };

  builders["eps-placement"] = function (root) {
    var STEPS = 200, LR = 1e-3, ALEPH = 0.95, SEED = 10;
    var f = frame(root, "Explore: ε inside and outside the root",
      "Chainer divides by √(n − g² + ε), PyTorch by √(n − g²) + ε; same η = 10⁻³, ρ = 0.95, no momentum, " +
      "on the fixed stream ∇ₜ = 1 + σ ξₜ. The curves show 1/dₜ, read off each step as −(wₜ − wₜ₋₁)/(η∇ₜ).");
    var sliders = [];
    var again = function () { run(); };
    var eps = new Slider(f.controls, {
      label: "stabilizer ε", values: ["0", "1e-8", "1e-7", "1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1"], value: "1e-4",
      help: "The same eps for both libraries.", valuetext: function (v) { return "epsilon " + (v ? v.toExponential(0) : "0"); },
      marks: function () { return [{ value: 1e-4, label: "Graves' 10⁻⁴" }]; },
    }, again);
    var sigma = new Slider(f.controls, {
      label: "noise σ", values: ["0", "0.001", "0.003", "0.01", "0.03", "0.1", "0.3", "1"], value: "0.01",
      help: "Spread of the gradient stream.", valuetext: function (v) { return "sigma " + v; },
      marks: function (c) {
        var r = Math.sqrt(c.eps);
        return c.eps > 0 && r <= 1 ? [{ value: r, label: "√ε", cls: "gx-mark-2", title: "σ = √ε: below it ε decides the denominator" }] : [];
      },
    }, again);
    sliders.push(eps, sigma);
    var dp = new Plot(f.plots, { x: [0, STEPS], y: [1, 1e5], logY: true, xlabel: "step t", ylabel: "1 / dₜ",
      title: "The inverse denominator", alt: "Inverse denominators of both placements against step" });
    var wp = new Plot(f.plots, { x: [0, STEPS], y: [-1, 0], xlabel: "step t", ylabel: "w", title: "The parameter",
      alt: "Parameter of both against step" });
    legend(root, [["gx-c1", "Chainer: ε inside the root"], ["gx-c2 gx-dashed", "PyTorch: ε outside"], ["gx-c3", "1/√ε"], ["gx-c0", "1/ε"]]);
    root.appendChild(f.readout);
    var last;

    function run() {
      var c = { eps: eps.value(), sigma: sigma.value() };
      sliders.forEach(function (s) { s.update(c); });
      var grads = stream(SEED, c.sigma, STEPS);
      var hp = { lr: LR, alpha: ALEPH, momentum: 0, eps: c.eps };
      var paths = { chainer: libraryRun(CHAINER, hp, grads, 1, -1), torch: libraryRun(TORCH, hp, grads, 1, -1) };
      last = { params: { lr: LR, alpha: ALEPH, momentum: 0, eps: c.eps, sigma: c.sigma },
        problem: { steps: STEPS, seed: SEED, stream: grads }, paths: paths };
      var inv = function (p) { return p.slice(1).map(function (w, t) { return [t + 1, -(w - p[t]) / (LR * grads[t])]; }); };
      var lo = Math.min(paths.chainer[STEPS], paths.torch[STEPS]);
      wp.y = [lo * 1.1, 0];
      wp.drawAxes({ xlabel: "step t", ylabel: "w" });
      dp.clear();
      wp.clear();
      if (c.eps > 0) {
        dp.hline(1 / Math.sqrt(c.eps), "gx-c3 gx-dotted");
        dp.hline(1 / c.eps, "gx-c0 gx-dotted");
      }
      [["chainer", "gx-c1"], ["torch", "gx-c2 gx-dashed"]].forEach(function (p) {
        dp.line(inv(paths[p[0]]), p[1]);
        wp.line(paths[p[0]].map(function (w, t) { return [t, w]; }), p[1]);
      });
      var a = inv(paths.chainer)[STEPS - 1][1], b = inv(paths.torch)[STEPS - 1][1];
      f.readout.textContent = "At step " + STEPS + ": Chainer's 1/d = " + fmt(a, 1) + ", PyTorch's " + fmt(b, 1) +
        " (ratio " + fmt(b / a, 2) + "); distance moved: Chainer " + fmt(-paths.chainer[STEPS], 3) + ", PyTorch " + fmt(-paths.torch[STEPS], 3) + ".";
    }
    run();
    return { result: function () { return last; }, sliders: { eps: eps, sigma: sigma } };
  };

  // ----------------------------------------------------------------- start

  var instances = {};
  window.gravesExplorables = { instances: instances, builders: builders };

  function start() {
    var roots = document.querySelectorAll(".gx-explorable[data-explorable]");
    for (var i = 0; i < roots.length; i++) {
      var name = roots[i].getAttribute("data-explorable");
      if (builders[name] && !instances[name]) {
        instances[name] = builders[name](roots[i]);
        roots[i].setAttribute("data-ready", "true");
      }
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();

  // the marks' labels are laid out for the width: redo them when it changes
  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      for (var name in instances) {
        var sliders = instances[name].sliders;
        for (var key in sliders) sliders[key].update(sliders[key].context);
      }
    }, 150);
  });
})();
