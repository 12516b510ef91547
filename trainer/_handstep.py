"""The built-in MLP's training step written out by hand, without autograd (issue 30).

Autograd and `torch.optim` take about a hundred op dispatches, each with its Python, for one
step of the MLP 784-300-100-10; at batch 64 on one CPU thread that made an epoch 1.7x as long
as its matrix products alone. `MlpStep` does the same step in about thirty ops:

1. gather the batch into preallocated buffers (`index_select(out=)`);
2. forward: per layer `addmm` into a buffer, the activation in place (its output is all its
   backward needs), dropout as a mask drawn with `bernoulli_` like `nn.Dropout`'s;
3. the loss, and its gradient by hand: (softmax - one-hot) / rows for cross-entropy,
   2 (output - target) / values for the squared error;
4. backward: per layer the weight gradient `mm` and the bias gradient `sum` straight into the
   parameters' `.grad` tensors, the input gradient `mm`, the dropout mask and the
   activation's backward (aten's own `*_backward` kernels, from the output) in place;
5. the update (`update`): a fused `torch.optim.SGD` is stepped by calling its kernel
   (`torch._fused_sgd_`) once per parameter group on the optimiser's own state, which is what
   `SGD.step` does less its Python; any other optimiser through its `step()`.

It trains the same maths as autograd, not the same bits: gradients agree to float32 rounding
(tests/trainer_tests/test_handstep.py). The same config on the same thread count gives the same
run again, as before. The optimiser's `state_dict` is the one `step()` would have left, so
checkpoints load either way.

Which runs take it: `why_autograd` says, for a model and config, why not (or None).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from trainer._config import TrainConfig

if TYPE_CHECKING:
    from trainer._data import Data

_aten = torch.ops.aten
# reads log-probabilities in the (classes, rows) layout as they are (nll_loss would copy them)
_nll_loss2d: Callable[..., Tensor] = torch._C._nn.nll_loss2d  # type: ignore[attr-defined]
_mse_loss: Callable[..., Tensor] = torch._C._nn.mse_loss  # reduction as aten's int: 1 = mean
# nn.SELU's constants (torch's selu is elu with these)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

# An activation as (forward in place, backward in place): backward(grad, output) turns the
# gradient with respect to the activation's output into that with respect to its input,
# reading only the output, as autograd's own backward of the in-place activation does.
Activation = tuple[Callable[[Tensor], object], Callable[[Tensor, Tensor], object]]


def _activation(module: nn.Module) -> Activation | None:
    """The hand-written form of one of `ACTIVATIONS`' modules, or None for another module."""
    kind = type(module)
    if kind is nn.ReLU:
        return torch.relu_, lambda g, out: _aten.threshold_backward.grad_input(
            g, out, 0, grad_input=g
        )
    if kind is nn.LeakyReLU:
        slope = float(module.negative_slope)  # type: ignore[arg-type]
        return (
            lambda h: torch._C._nn.leaky_relu_(h, slope),
            lambda g, out: _aten.leaky_relu_backward.grad_input(g, out, slope, True, grad_input=g),
        )
    if kind in (nn.ELU, nn.SELU):
        alpha = float(module.alpha) if kind is nn.ELU else SELU_ALPHA  # type: ignore[arg-type]
        scale = 1.0 if kind is nn.ELU else SELU_SCALE
        return (
            lambda h: _aten.elu_.default(h, alpha, scale, 1.0),
            lambda g, out: _aten.elu_backward.grad_input(
                g, alpha, scale, 1.0, True, out, grad_input=g
            ),
        )
    if kind is nn.Tanh:
        return torch.tanh_, lambda g, out: _aten.tanh_backward.grad_input(g, out, grad_input=g)
    if kind is nn.Sigmoid:
        return torch.sigmoid_, lambda g, out: _aten.sigmoid_backward.grad_input(
            g, out, grad_input=g
        )
    return None


@dataclasses.dataclass
class _Layer:
    """One linear layer and what follows it in the built-in MLP."""

    weight: Tensor  # detached: the step runs outside autograd and writes in place
    bias: Tensor
    activation: Activation | None = None  # None: the output layer
    keep: float = 1.0  # 1 - dropout probability; 1.0: no dropout


def _layers(model: nn.Module) -> list[_Layer] | str:
    """The layers of a network `build_model` made for `model = "mlp"`, or why it is not one
    the hand-written step runs."""
    if not isinstance(model, nn.Sequential):
        return "the network is not an nn.Sequential"
    modules = list(model)
    if not modules or not isinstance(modules[0], nn.Flatten):
        return "the network does not start with nn.Flatten"
    layers: list[_Layer] = []
    for module in modules[1:]:
        last = layers[-1] if layers else None
        if type(module) is nn.Linear:
            if last is not None and last.activation is None:
                return "two linear layers without an activation between them"
            if module.bias is None:
                return "a linear layer without a bias"
            layers.append(_Layer(module.weight.detach(), module.bias.detach()))
        elif (act := _activation(module)) is not None and last is not None:
            if last.activation is not None:
                return "two activations in a row"
            last.activation = act
        elif type(module) is nn.Dropout and last is not None and last.activation is not None:
            if last.keep < 1.0 or module.inplace:
                return "dropout twice in a row, or in place"
            last.keep = 1.0 - module.p
        else:
            return f"its layer {type(module).__name__} (batch norm, alpha dropout, ...)"
    if not layers or layers[-1].activation is not None:
        return "the network does not end with a linear layer"
    return layers


def why_autograd(model: nn.Module, config: TrainConfig, data: Data | None = None) -> str | None:
    """Why `fit` trains `model` through autograd, not the hand-written `MlpStep`: a reason, or
    None when `MlpStep` runs.

    `MlpStep` runs the built-in MLP (`model = "mlp"`: linear layers with any of `ACTIVATIONS`
    and optional `nn.Dropout` between them), for classification or regression, with any
    optimiser, weight decay, clipping and schedule, on the CPU. Autograd runs everything
    else: a factory's network (even one built the same way), batch norm, SELU's alpha dropout,
    frozen layers (`freeze`), the elastic-net penalty (`l1`), parameters or inputs not in
    float32, and any network on a GPU (the step is device-agnostic code, but it was written for
    the CPU's per-op cost and has not been checked on a GPU yet).
    """
    if config.model != "mlp":
        return f"model '{config.model}' is not the built-in 'mlp'"
    if config.l1:
        return "the elastic-net penalty (l1) is added to the loss through autograd"
    params = list(model.parameters())
    if not all(p.requires_grad for p in params):
        return "some layers are frozen (freeze)"
    if any(p.dtype != torch.float32 or p.layout != torch.strided for p in params):
        return "its parameters are not dense float32 tensors"
    if any(p.device.type != "cpu" for p in params):
        return "it is not on the CPU"
    if data is not None and (
        data.x_train.dtype != torch.float32 or data.x_train.device != params[0].device
    ):
        return "the inputs are not float32 tensors on the network's device"
    layers = _layers(model)
    return layers if isinstance(layers, str) else None


@dataclasses.dataclass
class _Forward:
    """One layer's forward pass on one batch size's buffers."""

    bias: Tensor
    x: Tensor  # the layer's input: the batch, or the output of the layer below (dropped out)
    weight_t: Tensor  # the weight, transposed (a view)
    out: Tensor  # the layer's output, after its activation
    activation: Callable[[Tensor], object] | None
    keep: float
    mask: Tensor | None  # the dropout mask, scaled by 1 / keep
    dropped: Tensor | None  # out * mask: the next layer's input


@dataclasses.dataclass
class _Below:
    """The layer below a layer, as its backward pass passes the gradient down into it."""

    grad: Tensor  # the gradient with respect to its output, then its linear output (in place)
    mask: Tensor | None  # its dropout mask
    out: Tensor  # its output (its activation's backward reads it)
    backward: Callable[[Tensor, Tensor], object]  # its activation's backward


@dataclasses.dataclass
class _Backward:
    """One layer's backward pass on one batch size's buffers."""

    grad: Tensor  # the loss's gradient with respect to the layer's linear output (rows, out)
    grad_t: Tensor  # the same, transposed (out, rows); one of the two is a view of the other
    x: Tensor  # the layer's input
    weight: Tensor
    weight_grad: Tensor
    bias_grad: Tensor
    below: _Below | None  # None for the first layer: the inputs need no gradient


@dataclasses.dataclass
class _CrossEntropy:
    """The loss's tensors for classification, in the (classes, rows) layout where
    log_softmax is ~7x faster than along the rows of a (rows, 10) tensor."""

    logits_t: Tensor  # the output transposed
    output_t: Tensor  # the output, as a transposed view (the copy's source)
    log_p: Tensor  # log-probabilities
    log_p_4d: Tensor  # a (1, classes, 1, rows) view of them: nll_loss2d's layout
    minus: Tensor  # -1 / rows in a (1, rows) row: the one-hot of the labels, scaled


@dataclasses.dataclass
class _Buffers:
    """One batch size's tensors, kept from step to step (none of them outlives a step)."""

    x: Tensor  # the batch's inputs, shaped as the data's
    forward: list[_Forward]
    backward: list[_Backward]  # output layer first; for cross-entropy its grad_t is the
    # contiguous one, in the (classes, rows) layout
    ones: Tensor  # (rows,) ones: bias gradients are grad_t @ ones
    scale: Tensor  # 1 / rows (cross-entropy) or 2 / values (squared error), as a tensor
    cross_entropy: _CrossEntropy | None  # None for regression


class MlpStep:
    """The training step of the built-in MLP by hand: forward, loss, backward, update.

    Build one per epoch (after the optimiser's state was restored); `__call__` writes the
    batch's gradients into the parameters' `.grad` tensors, `update` applies them.
    """

    def __init__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, data: Data, config: TrainConfig
    ) -> None:
        layers = _layers(model)
        if isinstance(layers, str):
            raise ValueError(f"MlpStep runs the built-in MLP only; this network has {layers}")
        self.layers, self.data, self.optimizer = layers, data, optimizer
        self.classify = config.task == "classification"
        for p in model.parameters():
            if p.grad is None:  # written in place by every step from now on
                p.grad = torch.zeros_like(p)
        self.grads: list[tuple[Tensor, Tensor]] = [
            (w.grad, b.grad)  # type: ignore[misc]
            for w, b in _pairs(model)
        ]
        self.flat_weight_grads = [w.view(-1) for w, _ in self.grads]
        self.buffers: dict[int, _Buffers] = {}
        self.update: Callable[[], object] = _fused_sgd_step(optimizer) or optimizer.step

    def squared_norms(self) -> list[Tensor]:
        """The squared norms of the weights' gradients, input side first, as 0-d tensors.

        A `dot` each: 26 against `_foreach_norm`'s 34 us for the MLP's three weights on one
        CPU thread, and as exact (both sum float32 squares: a norm above ~1.8e19 is inf either
        way).
        """
        return [torch.dot(g, g) for g in self.flat_weight_grads]

    def _buffers(self, rows: int) -> _Buffers:
        found = self.buffers.get(rows)
        if found is not None:
            return found
        x_train, device = self.data.x_train, self.data.x_train.device
        x = torch.empty(rows, *x_train.shape[1:], device=device)
        x_in = x.view(rows, -1)
        forward = []
        for layer in self.layers:
            out = torch.empty(rows, layer.weight.shape[0], device=device)
            mask = torch.empty_like(out) if layer.keep < 1.0 else None
            dropped = torch.empty_like(out) if layer.keep < 1.0 else None
            act = layer.activation[0] if layer.activation is not None else None
            forward.append(
                _Forward(layer.bias, x_in, layer.weight.t(), out, act, layer.keep, mask, dropped)
            )
            x_in = out if dropped is None else dropped
        grads = [torch.empty_like(f.out) for f in forward]
        cross_entropy = None
        if self.classify:
            logits_t = torch.empty(forward[-1].out.shape[1], rows, device=device)
            grads[-1] = torch.empty_like(logits_t).t()
            log_p = torch.empty_like(logits_t)
            minus = torch.full((1, rows), -1.0 / rows, device=device)
            log_p_4d = log_p.view(1, log_p.shape[0], 1, rows)
            output_t = forward[-1].out.t()
            cross_entropy = _CrossEntropy(logits_t, output_t, log_p, log_p_4d, minus)
        backward = []
        for i in range(len(forward) - 1, -1, -1):
            f, layer, (weight_grad, bias_grad) = forward[i], self.layers[i], self.grads[i]
            below = None
            if i > 0:
                low, backward_below = forward[i - 1], self.layers[i - 1].activation
                assert backward_below is not None  # hidden layers have one (`_layers`)
                below = _Below(grads[i - 1], low.mask, low.out, backward_below[1])
            backward.append(
                _Backward(grads[i], grads[i].t(), f.x, layer.weight, weight_grad, bias_grad, below)
            )
        values = rows * forward[-1].out.shape[1]
        scale = torch.tensor(1.0 / rows if self.classify else 2.0 / values, device=device)
        ones = torch.ones(rows, device=device)
        found = _Buffers(x, forward, backward, ones, scale, cross_entropy)
        self.buffers[rows] = found
        return found

    def __call__(self, index: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Trains on the rows `index` of the training split, whose targets are `y`: writes the
        gradients of the batch's mean loss into the parameters' `.grad`.

        Returns:
            The network's output (a tensor the next step of the same size overwrites: read
            it before) and the batch's loss.
        """
        b = self._buffers(len(index))
        torch.index_select(self.data.x_train, 0, index, out=b.x)
        # 1. forward
        for f in b.forward:
            torch.addmm(f.bias, f.x, f.weight_t, out=f.out)
            if f.activation is not None:
                f.activation(f.out)
            if f.mask is not None:
                f.mask.bernoulli_(f.keep)  # as nn.Dropout draws it: kept with p = keep
                f.mask.div_(f.keep)
                torch.mul(f.out, f.mask, out=f.dropped)
        # 2. the loss, and its gradient with respect to the output
        output, top = b.forward[-1].out, b.backward[0]
        ce = b.cross_entropy
        if ce is not None:  # cross-entropy: (softmax - one-hot) / rows
            ce.logits_t.copy_(ce.output_t)
            torch._log_softmax(ce.logits_t, 0, False, out=ce.log_p)
            loss = _nll_loss2d(ce.log_p_4d, y.view(1, 1, -1), None, 1, -100)  # 1: the mean
            g = top.grad_t
            torch.exp(ce.log_p, out=g)
            g.mul_(b.scale)
            g.scatter_add_(0, y.view(1, -1), ce.minus)
        else:  # squared error: 2 (output - target) / values
            target = y.view(output.shape)
            loss = _mse_loss(output, target, 1)  # 1: the mean
            torch.sub(output, target, out=top.grad)
            top.grad.mul_(b.scale)
        # 3. backward, output side first
        for k in b.backward:
            torch.mm(k.grad_t, k.x, out=k.weight_grad)
            torch.mv(k.grad_t, b.ones, out=k.bias_grad)
            low = k.below
            if low is None:
                break
            torch.mm(k.grad, k.weight, out=low.grad)
            if low.mask is not None:
                low.grad.mul_(low.mask)
            low.backward(low.grad, low.out)
        return output, loss


def _pairs(model: nn.Module) -> list[tuple[nn.Parameter, nn.Parameter]]:
    """(weight, bias) of each linear layer, input side first."""
    return [(m.weight, m.bias) for m in model.modules() if type(m) is nn.Linear]  # type: ignore[misc]


def _fused_sgd_step(optimizer: torch.optim.Optimizer) -> Callable[[], None] | None:
    """`optimizer.step()` for a fused `torch.optim.SGD` (what `OPTIMIZERS["sgd"]` makes),
    without its Python per step: one `torch._fused_sgd_` per parameter group, on the
    optimiser's own momentum buffers (made on the first step as `SGD.step` makes them), with
    each group's current lr. None for any other optimiser."""
    if type(optimizer) is not torch.optim.SGD:
        return None
    groups = optimizer.param_groups
    if any(
        not g["fused"] or g["maximize"] or g["differentiable"] or g.get("foreach") for g in groups
    ):
        return None
    if any(getattr(optimizer, name, None) is not None for name in ("grad_scale", "found_inf")):
        return None
    if optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks:
        return None  # hooks run around step(): let it run them
    from torch.optim import optimizer as module

    if module._global_optimizer_pre_hooks or module._global_optimizer_post_hooks:
        return None
    state = optimizer.state
    plans = []
    for group in groups:
        params = [p for p in group["params"] if p.grad is not None]
        buffers = [state[p].get("momentum_buffer") for p in params] if group["momentum"] else []
        made = {b is not None for b in buffers}
        if len(made) > 1:
            return None  # some buffers made, some not: leave it to SGD.step
        if params:
            plans.append(_SgdGroup(group, params, buffers, first=made == {False}))

    def step() -> None:
        for plan in plans:
            group = plan.group
            if plan.first:  # as SGD.step: the buffers start as the first gradient
                plan.buffers[:] = [torch.empty_like(p) for p in plan.params]
                for p, buffer in zip(plan.params, plan.buffers, strict=True):
                    state[p]["momentum_buffer"] = buffer
            torch._fused_sgd_(
                plan.detached,
                plan.grads,
                cast(list[Tensor], plan.buffers),
                weight_decay=group["weight_decay"],
                momentum=group["momentum"],
                lr=group["lr"],
                dampening=group["dampening"],
                nesterov=group["nesterov"],
                maximize=False,
                is_first_step=plan.first,
                grad_scale=None,
                found_inf=None,
            )
            plan.first = False
        optimizer._opt_called = True  # type: ignore[attr-defined]  # what the lr schedules check

    return step


class _SgdGroup:
    """One SGD parameter group's tensors for `torch._fused_sgd_`."""

    def __init__(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        buffers: list[Tensor | None],
        *,
        first: bool,
    ) -> None:
        self.group, self.params, self.first = group, params, first
        self.detached = [p.detach() for p in params]  # updated in place outside autograd
        self.grads = [p.grad for p in params if p.grad is not None]
        self.buffers = buffers
