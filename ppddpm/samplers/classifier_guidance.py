"""Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs", sec. 4).

A noisy classifier p_phi(y | x_t) steers sampling towards class y with the gradient

    g = s * grad_{x_t} log p_phi(y | x_t)                       (s: the classifier scale)

  * ancestral sampling (DDPM), Algorithm 1: x_{t-1} ~ N(mu + Sigma g, Sigma), the model's
    own mean and variance of p(x_{t-1} | x_t);
  * DDIM and the ODE solvers, Algorithm 2: eps <- eps - sqrt(1 - abar_t) g, and x0 re-derived
    from it (eq. 4 inverted) before the sampler's clipping.

The classifier is any dynamic-graph paddle Layer called as ``classifier(x, t)`` -> logits
[N, num_classes], with the same (original) timestep indices as the diffusion network. The
gradient comes from Paddle autograd through the classifier alone, so the diffusion network
itself may be an exported engine with no autograd.

Samplers see no classifier: ``guided_model`` binds a batch's labels into a callable
``model(x, t)`` that also carries ``classifier_gradient(x, t)``; ``classifier_gradient``
below returns None for a model without it.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import paddle
import paddle.nn.functional as F

from .guidance import null_label_of, with_labels


class ClassifierGuidance:
    """A classifier and its scale s; ``gradient(x, t, y)`` = s * grad_x log p(y | x_t)."""

    def __init__(self, classifier, scale: float = 1.0):
        if not isinstance(classifier, paddle.nn.Layer):
            raise TypeError("the classifier must be a dynamic-graph paddle.nn.Layer (its "
                            f"gradient comes from autograd), not {type(classifier).__name__}")
        if scale < 0:
            raise ValueError(f"the classifier scale must be >= 0, got {scale}")
        self.classifier = classifier
        self.scale = float(scale)
        self.num_classes = getattr(classifier, "num_classes", None)

    def gradient(self, x: paddle.Tensor, t: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
        """s * grad_x log softmax(classifier(x, t))[y], per image, as a tensor like ``x``."""
        with paddle.set_grad_enabled(True):   # samplers step under no_grad
            x_in = x.detach().astype("float32")
            x_in.stop_gradient = False
            logits = self.classifier(x_in, t).astype("float32")
            if len(logits.shape) != 2 or logits.shape[0] != x.shape[0]:
                raise ValueError(f"the classifier returned shape {list(logits.shape)} for a "
                                 f"batch of {x.shape[0]}; it must return logits [N, classes]")
            log_probs = F.log_softmax(logits, axis=-1)
            chosen = paddle.take_along_axis(log_probs, y.reshape([-1, 1]), axis=1)
            (grad,) = paddle.grad(chosen.sum(), x_in)
        return self.scale * grad.detach()


class ClassifierGuided:
    """``model`` (labels already bound, or unconditional) with the labels ``y`` of the batch
    bound for the classifier: ``self(x, t)`` is the network's output, unchanged;
    ``classifier_gradient(x, t)`` is g of the module docstring at the model's timesteps."""

    def __init__(self, model, guidance: ClassifierGuidance, y):
        self.model = model
        self.guidance = guidance
        self.y = y
        self.data_range = getattr(model, "data_range", (-1.0, 1.0))
        self.num_classes = getattr(model, "num_classes", None)

    def __call__(self, x, t, **kwargs):
        return self.model(x, t, **kwargs)

    def classifier_gradient(self, x, t):
        y = self.y if isinstance(self.y, paddle.Tensor) else \
            paddle.to_tensor(np.asarray(self.y, dtype=np.int64))
        y = y.astype("int64").reshape([-1])
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{y.shape[0]} labels for a batch of {x.shape[0]}")
        return self.guidance.gradient(x, t, y)


def guided_model(model, y=None, guidance_scale: float = 0.0,
                 classifier: Optional[ClassifierGuidance] = None):
    """The callable a sampling loop steps with: labels (and classifier-free guidance) bound
    as ``guidance.with_labels`` does, plus classifier guidance when ``classifier`` is given.
    With a classifier, ``y`` is the class to guide towards; an unconditional network gets
    no label, a conditional one gets the same ``y``."""
    if classifier is None:
        return with_labels(model, y, guidance_scale)
    if y is None:
        raise ValueError("classifier guidance needs the class labels y to guide towards")
    conditional = null_label_of(model) is not None
    bound = with_labels(model, y if conditional else None, guidance_scale if conditional else 0.0)
    return ClassifierGuided(bound, classifier, y)


def classifier_gradient(model, diffusion, x, t_vec) -> Optional[paddle.Tensor]:
    """g at x_t for the chain indices ``t_vec`` (the classifier sees the model's original
    timesteps, as the network does), or None when ``model`` is not classifier-guided."""
    gradient = getattr(model, "classifier_gradient", None)
    if gradient is None:
        return None
    return gradient(x, diffusion.model_timesteps(t_vec))
