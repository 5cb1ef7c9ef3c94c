"""The character-level LSTM of chapter 8: a generated text, the network,
Graves' clipping, training.

The chapter displays these functions from source and runs them;
ddp_char_lstm.py runs the same code on two processes.  Everything is float64
and seeded.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# -- the text -----------------------------------------------------------------

NOUNS = ["cat", "dog", "bird", "fox", "horse", "child", "river", "garden",
         "house", "stone"]
VERBS = ["sees", "follows", "finds", "hears", "watches", "leaves", "keeps",
         "meets"]
ADJECTIVES = ["old", "small", "quiet", "green", "bright", "slow"]
ALPHABET = " (),.\nabcdefghijklmnopqrstuvwxyz"


def noun_phrase(rng, depth: int) -> str:
    words = ["the" if rng.integers(2) else "a"]
    if rng.integers(3) == 0:
        words.append(ADJECTIVES[rng.integers(len(ADJECTIVES))])
    words.append(NOUNS[rng.integers(len(NOUNS))])
    phrase = " ".join(words)
    # a nested clause in brackets: structure over many characters
    if depth < 2 and rng.integers(4) == 0:
        verb = VERBS[rng.integers(len(VERBS))]
        phrase += " (which " + verb + " " + noun_phrase(rng, depth + 1) + ")"
    return phrase


def generate_text(n_chars: int, seed: int = 0) -> str:
    """Sentences from a small grammar with nested bracketed clauses, drawn with
    a seeded numpy generator (integer draws only, so the text is the same on
    every machine)."""
    rng = np.random.default_rng(seed)
    parts, length = [], 0
    while length < n_chars:
        subject = noun_phrase(rng, 0)
        verb = VERBS[rng.integers(len(VERBS))]
        sentence = subject + " " + verb + " " + noun_phrase(rng, 0)
        sentence += "." + ("\n" if rng.integers(5) == 0 else " ")
        parts.append(sentence)
        length += len(sentence)
    return "".join(parts)[:n_chars]


def encode(text: str) -> torch.Tensor:
    index = {c: i for i, c in enumerate(ALPHABET)}
    return torch.tensor([index[c] for c in text], dtype=torch.long)


def batch(data: torch.Tensor, rngs: list, batch_size: int, length: int):
    """For each network's generator, ``batch_size`` random windows of
    ``length + 1`` characters: inputs and next-character targets, each of
    shape (S, batch_size, length)."""
    starts = np.stack([rng.integers(0, len(data) - length - 1, size=batch_size)
                       for rng in rngs])
    offsets = torch.from_numpy(starts)[..., None] + torch.arange(length + 1)
    windows = data[offsets]
    return windows[..., :-1], windows[..., 1:]


# -- the network --------------------------------------------------------------

class CharLSTMs(torch.nn.Module):
    """``len(seeds)`` independent character-level LSTMs held in stacked
    tensors, one network per seed (index ``s`` of every parameter's first
    axis).  Each has one LSTM layer (input, forget and output gates; no
    peepholes) and a softmax read-out::

        Z_t = X_t W_x + h_{t-1} W_h + b   (the four gates' net inputs;
                                           X_t one-hot)
        i, f, o = σ(Z_t^i), σ(Z_t^f), σ(Z_t^o);  u = tanh(Z_t^u)
        C_t = f C_{t-1} + i u;  h_t = o tanh(C_t);  logits_t = h_t W_y + b_y

    No operation mixes networks, so one elementwise optimizer over the
    stacked tensors runs them as separate training runs.  With ``clip`` set,
    backpropagation clips each sequence's derivative ∂ℓ/∂Z_t to
    [−clip, clip] elementwise before it flows on (Graves' clipping of the
    LSTM derivatives), by a hook on each Z_t.  The loss averages over the J
    sequences of a batch, so the hook clips ∂L/∂Z_t = ∂ℓ/∂Z_t / J at
    clip / J: the same clipping for any batch split.
    """

    def __init__(self, seeds: list[int], vocab: int, hidden: int,
                 clip: float | None = None):
        super().__init__()
        # clipped: derivative entries clipped so far
        self.hidden, self.clip, self.clipped = hidden, clip, 0
        shapes = {"W_x": (vocab, 4 * hidden), "W_h": (hidden, 4 * hidden),
                  "b": (1, 4 * hidden), "W_y": (hidden, vocab),
                  "b_y": (1, vocab)}
        members = []
        # each network drawn from its own seed, as PyTorch's Linear draws
        for seed in seeds:
            g = torch.Generator().manual_seed(seed)
            bound = hidden ** -0.5
            members.append({
                k: (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1)
                * bound
                for k, shape in shapes.items()})
        for k in shapes:
            stacked = torch.stack([m[k] for m in members])
            setattr(self, k, torch.nn.Parameter(stacked))

    def _clipper(self, bound: float):
        def clip(grad: torch.Tensor) -> torch.Tensor:
            self.clipped += int((grad.abs() > bound).sum())
            return grad.clamp(-bound, bound)

        return clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (S, B·T, vocab), sequence by sequence, for inputs
        of shape (S, B, T)."""
        S, B, T = x.shape
        # one-hot X_t times W_x: a row lookup
        inputs = self.W_x[torch.arange(S)[:, None, None], x]
        h = inputs.new_zeros(S, B, self.hidden)
        c = inputs.new_zeros(S, B, self.hidden)
        outputs = []
        # unbind, not inputs[:, :, t]: one backward node, not T
        for x_t in inputs.unbind(dim=2):
            z = x_t + torch.bmm(h, self.W_h) + self.b
            if self.clip is not None and z.requires_grad:
                z.register_hook(self._clipper(self.clip / B))
            i, f, o, u = z.chunk(4, dim=2)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(u)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        hs = torch.stack(outputs, dim=2).reshape(S, B * T, self.hidden)
        # not a view: FSDP hooks the output
        return torch.bmm(hs, self.W_y) + self.b_y


def sequence_loss(model, x, y) -> torch.Tensor:
    """Each network's loss, Graves' log-loss summed over a sequence's
    characters and averaged over the batch (nats), shape (S,)."""
    S, B, T = x.shape
    logits = model(x)
    per_char = F.cross_entropy(logits.reshape(S * B * T, -1), y.reshape(-1),
                               reduction="none")
    return per_char.reshape(S, B * T).sum(dim=1) / B


def bits_per_character(model, data: torch.Tensor,
                       length: int = 100) -> np.ndarray:
    """Each network's mean log-loss in bits per character over ``data``, cut
    into sequences of ``length``."""
    n = (len(data) - 1) // length
    S = model.W_x.shape[0]
    x = data[: n * length].reshape(n, length).expand(S, n, length)
    y = data[1: n * length + 1].reshape(n, length).expand(S, n, length)
    with torch.no_grad():
        return sequence_loss(model, x, y).numpy() / length / np.log(2)


def train(model, opt, data, *, steps: int, seeds: list[int],
          batch_size: int = 16, length: int = 50,
          schedule=None) -> np.ndarray:
    """``steps`` optimizer steps, network ``s`` on random windows of ``data``
    drawn from ``seeds[s]``; ``schedule(t)`` multiplies the learning rate at
    step t (``LambdaLR``).  Returns each network's batch loss in bits per
    character, shape (steps, S)."""
    scheduler = None
    if schedule is not None:
        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    rngs = [np.random.default_rng(seed) for seed in seeds]
    losses = []
    for _ in range(steps):
        x, y = batch(data, rngs, batch_size, length)
        opt.zero_grad()
        loss = sequence_loss(model, x, y)
        # the networks share no parameter: each gets its own gradient
        loss.sum().backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.detach().numpy() / length / np.log(2))
    return np.array(losses)
