"""A scalar autograd engine: every number remembers how it was made, so it can send gradients back.

This is the idea behind every deep learning framework, on single numbers instead of tensors (in
the spirit of Karpathy's micrograd). The autograd lesson runs this file in your browser.

    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    out = (a * b + a).tanh()
    out.backward()          # fills a.grad = d out / d a and b.grad = d out / d b
    a.grad, b.grad

How it works, in two halves:
  - forward: each operation (+, *, tanh, ...) makes a new Value holding the result, the Values it
    was computed from (`parents`), and a small function `_backward` that knows the operation's
    local derivatives;
  - backward: `backward()` orders the graph so each Value comes after everything it was made from
    (a topological sort), sets d out / d out = 1, then walks that order in reverse: each Value's
    `_backward` multiplies its own gradient by the local derivatives (the chain rule) and ADDS the
    products into its parents' gradients. Adding matters: a Value used twice (like `a` above) gets
    the sum of the gradients from both uses.

Pure Python, no numpy: gradients of the real model come from hand-written backward passes
(reference/ops.py, shaders/*.wgsl); this engine is for seeing the rule on numbers you can follow.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Union

Number = Union[int, float]


class Value:
    """One scalar in a computation graph: its value, its gradient, and how it was computed."""

    def __init__(self, data: Number, parents: tuple["Value", ...] = (), op: str = "", label: str = ""):
        self.data = float(data)
        self.grad = 0.0  # d(output)/d(self), filled in by output.backward()
        self.parents = parents  # the Values this one was computed from (empty for inputs)
        self.op = op  # the operation that made it ("+", "*", "tanh", ...; "" for inputs)
        self.label = label  # an optional name, shown in the drawn graph
        self._backward: Callable[[], None] = lambda: None  # adds this node's grad into its parents'

    def __repr__(self) -> str:
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.6g}, grad={self.grad:.6g})"

    # -- operations: each returns a new Value and says how to send gradients back -----------------
    def __add__(self, other: "Value | Number") -> "Value":
        other = as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:  # d(a+b)/da = 1, d(a+b)/db = 1
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other: "Value | Number") -> "Value":
        other = as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:  # d(a*b)/da = b, d(a*b)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, exponent: Number) -> "Value":
        if not isinstance(exponent, (int, float)):
            raise TypeError("only a plain number can be an exponent here (Value ** 2, not Value ** Value)")
        out = Value(self.data ** exponent, (self,), f"**{exponent:g}")

        def _backward() -> None:  # d(a**n)/da = n * a**(n-1)
            self.grad += exponent * self.data ** (exponent - 1) * out.grad
        out._backward = _backward
        return out

    def tanh(self) -> "Value":
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward() -> None:  # d tanh(a)/da = 1 - tanh(a)**2
            self.grad += (1.0 - t * t) * out.grad
        out._backward = _backward
        return out

    def exp(self) -> "Value":
        e = math.exp(self.data)
        out = Value(e, (self,), "exp")

        def _backward() -> None:  # d exp(a)/da = exp(a)
            self.grad += e * out.grad
        out._backward = _backward
        return out

    def log(self) -> "Value":
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:  # d log(a)/da = 1/a
            self.grad += out.grad / self.data
        out._backward = _backward
        return out

    def relu(self) -> "Value":
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")

        def _backward() -> None:  # 1 where the input was positive, else 0 (the model's MLP uses ReLU)
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad
        out._backward = _backward
        return out

    # -- the rest are built from the operations above, so they need no backward of their own -------
    def __neg__(self) -> "Value":
        return self * -1

    def __sub__(self, other: "Value | Number") -> "Value":
        return self + (-as_value(other))

    def __truediv__(self, other: "Value | Number") -> "Value":
        return self * as_value(other) ** -1

    def __radd__(self, other: Number) -> "Value":  # 2 + a
        return self + other

    def __rmul__(self, other: Number) -> "Value":  # 2 * a
        return self * other

    def __rsub__(self, other: Number) -> "Value":  # 2 - a
        return as_value(other) - self

    def __rtruediv__(self, other: Number) -> "Value":  # 2 / a
        return as_value(other) / self

    # -- backpropagation --------------------------------------------------------------------------
    def backward(self) -> None:
        """Fill .grad of every Value this one depends on with d(self)/d(that Value)."""
        order = list(topological_order(self))
        for v in order:
            v.grad = 0.0  # running backward twice gives the same result, not double
        self.grad = 1.0  # d(self)/d(self)
        for v in reversed(order):  # outputs first: a node's grad is complete before it is passed on
            v._backward()


def as_value(x: "Value | Number") -> Value:
    """Plain numbers in an expression become constant Values (a * 2 is a * Value(2))."""
    return x if isinstance(x, Value) else Value(x)


def topological_order(root: Value) -> Iterator[Value]:
    """Every Value `root` depends on, each after all of its parents; `root` comes last.

    Iterative depth-first search (a long chain would overflow Python's recursion limit)."""
    seen: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        node, parents_done = stack.pop()
        if parents_done:
            yield node
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for p in reversed(node.parents):
            if id(p) not in seen:
                stack.append((p, False))
