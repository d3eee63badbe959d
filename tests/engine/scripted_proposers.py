"""Proposers whose next proposal is known in advance, for the stopping-rule and resume tests.

Tests register them by name (`PROPOSERS`) so that `autorec search --proposer NAME` finds them.
"""

from __future__ import annotations

import json

from autorec.agents.base import Proposal, Proposer
from autorec.agents.llm.base import Completion


class Scripted(Proposer):
    """Proposes `params` in order, then nothing. Each proposal carries one LLM call of
    `tokens_in` + `tokens_out` tokens costing `cost`, when those are given."""

    name = "scripted"

    def __init__(self, space, seed=0, params=(), tokens_in=0, tokens_out=0, cost=0.0,
                 screened=()):  # fmt: skip
        super().__init__(space, seed)
        self.todo = [dict(p) for p in params]
        self.tokens_in, self.tokens_out, self.cost = int(tokens_in), int(tokens_out), float(cost)
        self.screened = {int(i) for i in screened}  # positions in `params` proposed as screened
        self.made = 0
        self.seen = []

    def propose(self, context, n):
        out, self.todo = self.todo[:n], self.todo[n:]
        proposals = []
        for params in out:
            reason = "screened by the script" if self.made in self.screened else None
            self.made += 1
            proposals.append(Proposal(params=params, operator="scripted",
                                      llm_calls=self._calls(params), screened=reason))
        return proposals

    def _calls(self, params):
        if not (self.tokens_in or self.tokens_out or self.cost):
            return []
        text = json.dumps(params)
        return [Completion(text, "scripted", "planted", [{"role": "user", "content": "next?"}],
                           tokens_in=self.tokens_in, tokens_out=self.tokens_out, cost=self.cost)]

    def observe(self, result):
        self.seen.append(result)


class Counter(Proposer):
    """Proposes x = step, 2 step, 3 step, ...: the next proposal follows from its state alone."""

    name = "counter"

    def __init__(self, space, seed=0, step=0.5):
        super().__init__(space, seed)
        self.step, self.count = float(step), 0

    def propose(self, context, n):
        out = []
        for _ in range(n):
            self.count += 1
            out.append(Proposal(params={"x": self.count * self.step}, operator="counter"))
        return out

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = int(state["count"])
