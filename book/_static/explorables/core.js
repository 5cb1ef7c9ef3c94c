/* The update rules of graves.core, transcribed for the book's explorables.
 *
 * One function per update, as in graves/core.py: each works in place on
 * Float64Arrays, element by element, with the operations of the numpy
 * original in the same order, so that every intermediate rounds as numpy
 * rounds it (IEEE doubles; +, -, *, / and Math.sqrt are correctly rounded).
 * tests/site/test_explorables.py runs these functions in Chromium and
 * compares them with graves on the same inputs.
 *
 * Also here: the seeded noise of the explorables (mulberry32 and a sum of
 * twelve uniforms), integer arithmetic that Python reproduces exactly.
 *
 * A classic script (no modules), so that the book also works from file://.
 */
(function () {
  "use strict";

  // start ema_update
  // average <- decay * average + (1 - decay) * x      (graves.core.ema_update)
  function emaUpdate(average, x, decay) {
    var oneMinus = 1 - decay;
    for (var i = 0; i < average.length; i++) {
      var s = x[i] * oneMinus;
      average[i] = average[i] * decay + s;
    }
  }
  // end ema_update

  // start sgd_step
  // velocity <- momentum * velocity - lr * grad;  w <- w + velocity
  // (graves.core.sgd_step)
  function sgdStep(w, grad, state, lr, momentum) {
    var v = state.velocity;
    for (var i = 0; i < w.length; i++) {
      var s = grad[i] * lr;
      v[i] = v[i] * momentum - s;
      w[i] = w[i] + v[i];
    }
  }
  // end sgd_step

  // start rmsprop_step
  // n <- alpha n + (1 - alpha) grad^2;  w <- w - lr grad / sqrt(n + eps)
  // (graves.core.rmsprop_step)
  function rmspropStep(w, grad, state, lr, alpha, eps) {
    var n = state.n, sq = new Float64Array(w.length);
    for (var i = 0; i < w.length; i++) sq[i] = grad[i] * grad[i];
    emaUpdate(n, sq, alpha);
    for (var j = 0; j < w.length; j++) {
      var s = grad[j] / Math.sqrt(n[j] + eps);
      w[j] = w[j] - s * lr;
    }
  }
  // end rmsprop_step

  // start centered_rmsprop_step
  // Graves' eqs. 38-41 with the constants placed as `variant` says
  // (graves.core.centered_rmsprop_step); spread "recursive": the state holds
  // s = n - g^2 in place of n (graves.core.SpreadState)
  var GRAVES = { epsInSqrt: true, lrInBuffer: true, nesterov: false,
                 biasCorrection: false, centered: true, spread: "difference" };

  function centeredRmspropStep(w, grad, state, lr, alpha, momentum, eps,
                               variant, step) {
    variant = variant || GRAVES;
    var n = state.n, g = state.g, delta = state.delta, size = w.length, i;
    var recursive = variant.spread === "recursive";
    if (recursive) {
      // s <- alpha s + alpha (1 - alpha) (grad - g')^2, g' the mean before
      // the step
      var c = alpha * (1 - alpha);
      for (i = 0; i < size; i++) {
        var e = grad[i] - g[i];
        state.s[i] = state.s[i] * alpha + (e * e) * c;
      }
      emaUpdate(g, grad, alpha); // eq. 39
    } else {
      var sq = new Float64Array(size);
      for (i = 0; i < size; i++) sq[i] = grad[i] * grad[i];
      emaUpdate(n, sq, alpha); // eq. 38
      if (variant.centered) emaUpdate(g, grad, alpha); // eq. 39
    }
    // Math.pow, like C's pow, need not round correctly: with bias correction
    // the last bit of the correction may differ from numpy's alpha**step.
    var count = step === undefined ? 1 : step;
    var correction = variant.biasCorrection ? 1 - Math.pow(alpha, count) : 1;
    for (i = 0; i < size; i++) {
      var s; // the spread n - g^2 (uncentered: n alone)
      if (recursive) {
        s = state.s[i];
      } else if (!variant.centered) {
        s = variant.biasCorrection ? n[i] / correction : n[i];
      } else if (variant.biasCorrection) {
        var gHat = g[i] / correction;
        s = n[i] / correction - gHat * gHat;
      } else {
        s = n[i] - g[i] * g[i];
      }
      var d = variant.epsInSqrt ? Math.sqrt(s + eps) : Math.sqrt(s) + eps;
      var u = grad[i] / d;
      if (variant.lrInBuffer) {
        // eq. 40, and eq. 41 with the sign folded into the buffer
        var step_ = u * lr;
        delta[i] = delta[i] * momentum - step_;
        if (variant.nesterov) w[i] = w[i] + (delta[i] * momentum - step_);
        else w[i] = w[i] + delta[i];
      } else { // PyTorch: buffer <- momentum buffer + u;  w <- w - lr buffer
        delta[i] = delta[i] * momentum + u;
        w[i] = w[i] - delta[i] * lr;
      }
    }
  }

  // Graves' RMSprop as published (graves.core.graves_step)
  function gravesStep(w, grad, state, lr, alpha, momentum, eps) {
    centeredRmspropStep(w, grad, state, lr, alpha, momentum, eps, GRAVES);
  }
  // end centered_rmsprop_step

  // start noise
  // mulberry32: a 32-bit state, advanced by integer additions, multiplications
  // and shifts modulo 2^32, which Python's integers reproduce exactly.
  function mulberry32(seed) {
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6D2B79F5) >>> 0;
      var t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (t ^ (t >>> 14)) >>> 0; // an integer in [0, 2^32)
    };
  }

  // Noise of mean 0 and variance 1: twelve uniforms k/2^32 summed, minus 6.
  // The integer sum stays below 2^36 and the scaling is by a power of two, so
  // every operation is exact: no log or cos (Box-Muller), whose last bits
  // differ between math libraries.
  function noiseSource(seed) {
    var next = mulberry32(seed);
    return function () {
      var sum = 0;
      for (var k = 0; k < 12; k++) sum += next();
      return sum / 4294967296 - 6; // 4294967296 = 2^32
    };
  }
  // end noise

  window.gravesCore = {
    emaUpdate: emaUpdate,
    sgdStep: sgdStep,
    rmspropStep: rmspropStep,
    centeredRmspropStep: centeredRmspropStep,
    gravesStep: gravesStep,
    GRAVES: GRAVES,
    mulberry32: mulberry32,
    noiseSource: noiseSource,
  };
})();
