from __future__ import annotations

import io

import torch
from torch import nn

import trainer


def _mlp(batch_norm: bool = False) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(10, 7)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(7))
    return nn.Sequential(*layers, nn.ReLU(), nn.Linear(7, 3))


def test_count_params_counts_weights_and_biases() -> None:
    assert trainer.count_params(_mlp()) == 10 * 7 + 7 + 7 * 3 + 3


def test_count_params_leaves_frozen_layers_out() -> None:
    model = _mlp()
    model[0].requires_grad_(False)
    assert trainer.count_params(model) == 7 * 3 + 3


def test_model_bytes_counts_buffers_as_a_saved_state_holds_them() -> None:
    model = _mlp(batch_norm=True)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    tensors = torch.load(io.BytesIO(buffer.getvalue()))
    expected = sum(t.numel() * t.element_size() for t in tensors.values())
    assert trainer.model_bytes(model) == expected
    assert expected > trainer.count_params(model) * 4  # running stats and the count too


def test_flops_per_example_are_two_per_multiply_add() -> None:
    flops = trainer.flops_per_example(_mlp(), torch.randn(5, 10))
    assert flops == 2 * (10 * 7 + 7 * 3)


def test_flops_per_example_leave_the_model_in_training_mode() -> None:
    model = _mlp(batch_norm=True)
    trainer.flops_per_example(model, torch.randn(4, 10))
    assert model.training


def test_latency_ms_is_positive_and_restores_the_thread_count() -> None:
    torch.set_num_threads(1)
    before = torch.get_num_threads()
    value = trainer.latency_ms(_mlp(), torch.randn(8, 10), warmup=1, repeats=3)
    assert value > 0.0
    assert torch.get_num_threads() == before


def test_latency_ms_times_its_forwards_after_the_warm_up_in_eval_mode_without_gradients() -> None:
    seen: list[tuple[bool, bool]] = []
    model = _mlp()
    model.register_forward_hook(
        lambda m, _i, _o: seen.append((m.training, torch.is_grad_enabled()))
    )
    trainer.latency_ms(model, torch.randn(8, 10), warmup=2, repeats=3)
    assert seen == [(False, False)] * 5  # 2 warm-up + 3 timed forwards, no training, no grad
    assert model.training  # its mode is given back
