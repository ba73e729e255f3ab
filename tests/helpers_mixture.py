"""The smooth 2-D case the solver-order tests share: a 2-component Gaussian mixture (std 0.3)
whose probability-flow ODE is smooth enough for the asymptotic order to show by 10-80 steps,
start points, and the exact end point for any last grid point (the ODE to that point by
scipy, then x0-hat there: the step every solver takes last), cached."""
import numpy as np

from ppddpm.samplers.oracles import GaussianMixtureOracle


def smooth_mixture_case(abar, n_points, tol):
    """(oracle, x_T [n_points, 2], reference(t_end) -> exact end points)."""
    oracle = GaussianMixtureOracle([[0.5, 0.5], [-0.5, -0.3]], 0.3, abar)
    x_T = np.random.default_rng(5).standard_normal((n_points, 2))
    cache = {}

    def reference(t_end):
        if t_end not in cache:
            x_end = oracle.ode_solution(x_T, abar[-1], abar[t_end], rtol=tol, atol=tol)
            cache[t_end] = oracle.x0_np(x_end, abar[t_end])
        return cache[t_end]
    return oracle, x_T, reference
