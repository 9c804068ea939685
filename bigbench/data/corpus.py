"""The ``corpus`` dataset: text from a seeded order-k Markov source whose entropy is known exactly.

The source: for each of the ``V**k`` contexts (the last ``k`` tokens) the next token is one of
``branching`` distinct tokens chosen at random, with weights drawn from a symmetric
Dirichlet(``alpha``). The table comes from the seed alone, so a config names one source.

Ergodicity. Sparse supports can leave some k-grams unreachable, or split the chain into several
closed classes. Unreachable (transient) k-grams are harmless: they get zero stationary
probability and never occur. Several closed classes would make the stationary distribution
depend on how the chain starts, so the table is checked for a *single* closed class and redrawn
(from the same seeded generator) until it has one; supports are never padded with an epsilon,
so every context really has ``branching`` successors. Periodicity is harmless too: windows
start in the stationary distribution instead of converging to it, and the stationary
distribution is computed from a lazy chain (or a direct solve), which does not need it.

Windows. Each window of ``T + 1`` tokens (input ``x`` and the target ``y`` shifted by one) is an
independent chain segment: its first ``k`` tokens are a k-gram drawn from the stationary
distribution, the rest follow the chain. So every position of every window has the stationary
marginals, and the lowest expected cross-entropy of a model that sees the whole window so far
is, at position ``j`` (predicting token ``j + 1`` from ``j + 1`` tokens of context):

* ``H(X_{j+2} | X_1..X_{j+1}) = H(P_{j+2}) - H(P_{j+1})`` while ``j + 1 < k`` (``P_m`` the
  stationary m-gram distribution: there is less context than the source uses), and
* the entropy rate ``H = sum_s pi(s) H(P(.|s))`` from then on (the Markov property).

``entropy_floor`` is the mean of those over the ``T`` positions, in nats per token: no model can
have a lower expected mean loss on these windows, and the true source reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bigbench.data.specs import CorpusArgs
from bigbench.data.tensors import Dataset, Split
from bigbench.data.text import language_model_dataset
from bigbench.errors import DataError

#: Up to this many contexts the stationary distribution is one dense linear solve.
DENSE_SOLVE_CONTEXTS = 1024
#: L1 distance from stationarity accepted for the stationary distribution.
STATIONARY_TOLERANCE = 1e-12
#: Tables drawn before giving up on one with a single closed class.
MAX_DRAWS = 50


@dataclass(frozen=True)
class MarkovSource:
    """An order-k Markov source over ``vocab_size`` tokens with sparse transitions.

    Attributes:
        vocab_size: V. order: k.
        support: ``(V**k, b)`` int64, the tokens that may follow each context; a context's
            index is its k tokens read as a base-V number, oldest first.
        weights: ``(V**k, b)`` float64, their probabilities (rows sum to 1).
        stationary: ``(V**k,)`` float64, the stationary distribution over k-grams.
    """

    vocab_size: int
    order: int
    support: np.ndarray
    weights: np.ndarray
    stationary: np.ndarray

    def marginal(self, m: int) -> np.ndarray:
        """The stationary distribution of ``m <= k`` consecutive tokens, flat, base-V indexed."""
        grams = self.stationary.reshape((self.vocab_size,) * self.order)
        return grams.sum(axis=tuple(range(m, self.order))).reshape(-1)

    def log_probs(self, windows: np.ndarray) -> np.ndarray:
        """The true log-probability of each token of ``windows`` given the tokens before it.

        Args:
            windows: ``(N, L)`` tokens drawn from this source as :func:`sample_windows` does.

        Returns:
            ``(N, L - 1)`` float64: entry ``j`` is ``log P(token j+1 | tokens 0..j)`` in nats.
        """
        v, k = self.vocab_size, self.order
        out = np.empty((windows.shape[0], windows.shape[1] - 1))
        for j in range(out.shape[1]):
            if j + 1 < k:  # less context than the source uses: a ratio of stationary marginals
                out[:, j] = (np.log(self.marginal(j + 2)[_encode(windows[:, :j + 2], v)])
                             - np.log(self.marginal(j + 1)[_encode(windows[:, :j + 1], v)]))
            else:
                state = _encode(windows[:, j + 1 - k:j + 1], v)
                hit = self.support[state] == windows[:, j + 1, None]
                out[:, j] = np.log((self.weights[state] * hit).sum(axis=1))
        return out


def _encode(tokens: np.ndarray, base: int) -> np.ndarray:
    """Rows of tokens as base-``base`` numbers, first token most significant."""
    index = np.zeros(tokens.shape[0], dtype=np.int64)
    for column in range(tokens.shape[1]):
        index = index * base + tokens[:, column]
    return index


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def source_entropy(source: MarkovSource, context: int) -> tuple[float, np.ndarray]:
    """The source's entropy rate and the lowest reachable loss at each window position.

    Args:
        source: The Markov source.
        context: Tokens per window ``T``.

    Returns:
        ``(rate, floors)``: the entropy rate in nats/token and a ``(T,)`` float64 array whose
        entry ``j`` is the conditional entropy of token ``j + 1`` given tokens ``0..j`` under
        stationarity; its mean is the dataset's ``entropy_floor``.
    """
    w = source.weights
    logs = np.log(np.where(w > 0, w, 1.0))
    rate = float(source.stationary @ -(w * logs).sum(axis=1))
    floors = np.full(context, rate)
    gram_entropy = [0.0] + [_entropy(source.marginal(m)) for m in range(1, source.order + 1)]
    for j in range(min(context, source.order - 1)):
        floors[j] = gram_entropy[j + 2] - gram_entropy[j + 1]
    return rate, floors


def _draw_support(rng: np.random.Generator, contexts: int, vocab: int, branching: int
                  ) -> np.ndarray:
    """``branching`` distinct random tokens per context."""
    if branching * branching <= vocab:
        # Repeats are rare: draw with replacement and redraw only the rows that repeat a token.
        support = rng.integers(0, vocab, size=(contexts, branching))
        while True:
            ordered = np.sort(support, axis=1)
            repeats = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
            if not repeats.any():
                return support
            support[repeats] = rng.integers(0, vocab, size=(int(repeats.sum()), branching))
    # Otherwise the first `branching` of a random permutation, a bounded block of rows at a time.
    support = np.empty((contexts, branching), dtype=np.int64)
    rows = max(1, 2**22 // vocab)
    for start in range(0, contexts, rows):
        keys = rng.random((min(rows, contexts - start), vocab))
        support[start:start + rows] = np.argpartition(keys, branching - 1, axis=1)[:, :branching]
    return support


def _reach(start: int, src: np.ndarray, dst: np.ndarray, size: int) -> np.ndarray:
    """States reachable from ``start`` along the edges ``src -> dst`` (breadth first)."""
    seen = np.zeros(size, dtype=bool)
    seen[start] = True
    frontier = seen.copy()
    while True:
        step = dst[frontier[src]]
        step = step[~seen[step]]
        if step.size == 0:
            return seen
        seen[step] = True
        frontier = np.zeros(size, dtype=bool)
        frontier[step] = True


def _single_closed_class(next_state: np.ndarray, weights: np.ndarray) -> bool:
    """True when the chain has exactly one closed class (every state can reach it)."""
    size = next_state.shape[0]
    src = np.repeat(np.arange(size), next_state.shape[1])[weights.reshape(-1) > 0]
    dst = next_state.reshape(-1)[weights.reshape(-1) > 0]
    state = 0
    for _ in range(64):
        forward, backward = _reach(state, src, dst, size), _reach(state, dst, src, size)
        escape = forward & ~backward
        if not escape.any():  # the class of `state` is closed: unique iff all states reach it
            return bool(backward.all())
        state = int(np.flatnonzero(escape)[-1])  # reaches strictly fewer states: descend
    return False


def _stationary(next_state: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The stationary distribution of a chain with one closed class."""
    size, branching = next_state.shape
    rows = np.repeat(np.arange(size), branching)
    if size <= DENSE_SOLVE_CONTEXTS:
        # pi (P - I) = 0 with sum(pi) = 1 replacing one (redundant) equation.
        system = np.zeros((size, size))
        np.add.at(system, (next_state.reshape(-1), rows), weights.reshape(-1))
        system -= np.eye(size)
        system[-1] = 1.0
        rhs = np.zeros(size)
        rhs[-1] = 1.0
        pi = np.linalg.solve(system, rhs)
    else:
        # Power iteration on the lazy chain (I + 9 P) / 10: the same stationary distribution,
        # and aperiodic whatever P is, so the iteration converges.
        flat_next, flat_w = next_state.reshape(-1), weights.reshape(-1)
        pi = np.full(size, 1.0 / size)
        for _ in range(min(100_000, max(1_000, 2**31 // flat_w.size))):
            moved = np.bincount(flat_next, weights=np.repeat(pi, branching) * flat_w,
                                minlength=size)
            if np.abs(moved - pi).sum() < STATIONARY_TOLERANCE:
                break
            pi = 0.1 * pi + 0.9 * moved
    pi = np.clip(pi, 0.0, None)
    pi /= pi.sum()
    moved = np.bincount(next_state.reshape(-1), weights=np.repeat(pi, branching)
                        * weights.reshape(-1), minlength=size)
    residual = float(np.abs(moved - pi).sum())
    if not residual < 1e3 * STATIONARY_TOLERANCE:
        raise DataError(f"data: the corpus source mixes too slowly to compute its stationary "
                        f"distribution exactly (residual {residual:.1e}); raise data.alpha or "
                        "data.branching, or change data.seed")
    return pi


def source_from_table(vocab_size: int, order: int, support: np.ndarray, weights: np.ndarray
                      ) -> MarkovSource:
    """A Markov source from its transition table; computes the stationary distribution.

    Raises:
        DataError: when the chain does not have exactly one closed class.
    """
    contexts = vocab_size ** order
    support = np.asarray(support, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    if support.shape != weights.shape or support.shape[0] != contexts:
        raise ValueError(f"support {support.shape} and weights {weights.shape} must both be "
                         f"({contexts}, branching)")
    next_state = (np.arange(contexts)[:, None] * vocab_size + support) % contexts
    if not _single_closed_class(next_state, weights):
        raise DataError("data: the corpus source has more than one closed class of contexts, "
                        "so its stationary distribution is not unique")
    return MarkovSource(vocab_size, order, support, weights, _stationary(next_state, weights))


def markov_source(vocab_size: int, order: int, branching: int, alpha: float, seed: int
                  ) -> MarkovSource:
    """Draw the source of a ``corpus`` dataset from its seed (see the module docstring)."""
    rng = np.random.default_rng([seed, 0])
    contexts = vocab_size ** order
    for _ in range(MAX_DRAWS):
        support = _draw_support(rng, contexts, vocab_size, branching)
        weights = rng.dirichlet(np.full(branching, alpha), size=contexts)
        next_state = (np.arange(contexts)[:, None] * vocab_size + support) % contexts
        if _single_closed_class(next_state, weights):
            return MarkovSource(vocab_size, order, support, weights,
                                _stationary(next_state, weights))
    raise DataError(f"data: no corpus source with a single closed class in {MAX_DRAWS} draws "
                    f"(vocab_size {vocab_size}, order {order}, branching {branching}); raise "
                    "data.branching or change data.seed")


def sample_windows(source: MarkovSource, count: int, length: int, rng: np.random.Generator
                   ) -> np.ndarray:
    """``count`` independent chain segments of ``length`` tokens, started stationary.

    Sampling inverts cumulative probabilities offset by the context index, so probabilities
    are honoured to within one float64 rounding of that sum (about 2**-32 at 2**20 contexts).

    Returns:
        ``(count, length)`` int64 tokens.
    """
    v, k = source.vocab_size, source.order
    contexts, branching = source.support.shape
    tokens = np.empty((count, length), dtype=np.int64)
    present = np.flatnonzero(source.stationary > 0)
    cumulative = np.cumsum(source.stationary[present])
    pick = np.searchsorted(cumulative / cumulative[-1], rng.random(count), side="right")
    state = present[np.minimum(pick, present.size - 1)]
    for i in range(min(k, length)):
        tokens[:, i] = state // v ** (k - 1 - i) % v
    rows = np.cumsum(source.weights, axis=1)
    rows[:, -1] = 1.0
    table = (rows + np.arange(contexts)[:, None]).reshape(-1)
    support = source.support.reshape(-1)
    for position in range(k, length):
        pick = np.searchsorted(table, state + rng.random(count), side="right")
        token = support[np.minimum(pick, state * branching + branching - 1)]
        tokens[:, position] = token
        state = (state * v + token) % contexts
    return tokens


def _split(windows: np.ndarray) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(windows[:, :-1])),
                 torch.from_numpy(np.ascontiguousarray(windows[:, 1:])))


def build_corpus(args: CorpusArgs, device: torch.device) -> Dataset:
    """The ``corpus`` dataset; train and test windows come from independent generators."""
    source = markov_source(args.vocab_size, args.order, args.branching, args.alpha, args.seed)
    _, floors = source_entropy(source, args.context)
    length = args.context + 1
    train = _split(sample_windows(source, args.size, length, np.random.default_rng([args.seed, 1])))
    test = _split(sample_windows(source, args.test_size, length,
                                 np.random.default_rng([args.seed, 2]))) if args.test_size else None
    return language_model_dataset(train, test, args.vocab_size, device,
                                  entropy_floor=float(floors.mean()))
