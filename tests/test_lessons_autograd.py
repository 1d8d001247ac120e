"""pyscript_app/lessons/autograd.py: the scalar Value engine's gradients, checked by finite differences."""

from __future__ import annotations

import math

import pytest

from pyscript_app.lessons.autograd import Value, as_value, topological_order

H = 1e-6


def numeric(f, xs: list[float], i: int) -> float:
    """Central difference of f (plain floats in, float out) in its i-th argument."""
    plus, minus = list(xs), list(xs)
    plus[i] += H
    minus[i] -= H
    return (f(*plus) - f(*minus)) / (2 * H)


OPS = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "pow": (lambda a, b: a ** 3 * b, lambda a, b: a ** 3 * b),
    "tanh": (lambda a, b: (a * b).tanh(), lambda a, b: math.tanh(a * b)),
    "exp": (lambda a, b: (a - b).exp(), lambda a, b: math.exp(a - b)),
    "log": (lambda a, b: (a * a + b * b).log(), lambda a, b: math.log(a * a + b * b)),
    "relu": (lambda a, b: (a + b).relu() * a, lambda a, b: max(a + b, 0.0) * a),
    "reflected": (lambda a, b: 2 - a / (1 + b) * 3, lambda a, b: 2 - a / (1 + b) * 3),
    "neg": (lambda a, b: -(a * b), lambda a, b: -(a * b)),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_operation_matches_its_float_math_and_finite_differences(name):
    on_values, on_floats = OPS[name]
    xs = [0.7, -1.3]
    a, b = Value(xs[0]), Value(xs[1])
    out = on_values(a, b)
    out.backward()
    assert out.data == pytest.approx(on_floats(*xs), rel=1e-12)
    assert a.grad == pytest.approx(numeric(on_floats, xs, 0), rel=1e-5, abs=1e-8)
    assert b.grad == pytest.approx(numeric(on_floats, xs, 1), rel=1e-5, abs=1e-8)


def test_a_value_used_twice_gets_the_sum_of_both_gradients():
    a = Value(3.0)
    out = a * a + a  # d/da = 2a + 1
    out.backward()
    assert a.grad == 7.0


def test_backward_twice_gives_the_same_gradients_not_double():
    a, b = Value(2.0), Value(-1.0)
    out = (a * b).tanh()
    out.backward()
    first = (a.grad, b.grad)
    out.backward()
    assert (a.grad, b.grad) == first


def test_topological_order_puts_every_value_after_its_parents_and_the_root_last():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    out = d * c
    order = list(topological_order(out))
    pos = {id(v): i for i, v in enumerate(order)}
    assert order[-1] is out and len(order) == 5
    for v in order:
        assert all(pos[id(p)] < pos[id(v)] for p in v.parents)


def test_a_long_chain_does_not_hit_the_recursion_limit():
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001 ** 5000, rel=1e-9)


def test_exponent_must_be_a_plain_number():
    with pytest.raises(TypeError):
        Value(2.0) ** Value(3.0)


def test_as_value_wraps_numbers_and_keeps_values():
    v = Value(1.0)
    assert as_value(v) is v
    assert as_value(4).data == 4.0 and not as_value(4).parents
    assert "a=" in repr(Value(1.0, label="a"))
