"""Many ScatNet trainings as one: their heads stacked, each layer one batched matrix product.

The ScatNet's trainings (the sweep's draws, the folds) are small MLPs on the same cached
coefficients. Through autograd and torch's SGD each step also allocates the first layer's
gradient (as large as its weights: 1 GB at `paper` sizes) and passes over it again to update.
Here the heads of M trainings are stacked (`torch.baddbmm` over M x rows x features), with
forward, backward and SGD written out so that:

- every training keeps its own batch order and dropout (generators seeded as `train_steps`
  seeds them), its own standardisation, budget, checks and early stopping, so each ends where
  its separate training ends, to float rounding (tests/test_heads.py);
- the first layer's weights are stored transposed (features x units) for the stack, and its
  gradient is never materialised: the product adds it straight into the momentum buffer (or,
  without momentum, into the weights), so a step allocates nothing the size of the weights.

A stack saves the per-step work around the products and lets a threaded product spread its
trainings over the cores; on one thread each training's products run at the rate they run
alone (`python -m benchmarks.stacked_heads`).

The modules keep nn.Linear's layout: weights are copied out of the stack into each training's
`Classifier` when it ends, so registered models keep their state-dict keys and load as before.
Shorter batches (the end of a pass over fewer rows) are padded to the stack's batch and their
padding weighs nothing in the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace

import pandas as pd
import torch
from torch import nn

from glasses.config import GlassesConfig, OptimiserConfig
from glasses.models.scatnet import ScatNet, coefficient_count
from glasses.training import Check, Rows, Trained, batch_order, resolve_device, validated

BF16 = "bfloat16"


@dataclass
class HeadTraining:
    """One ScatNet training of the stack: its model (standardisation fitted), rows and seed, as
    `train_steps` takes them."""

    model: ScatNet
    train: Rows  # coefficient rows (and copies) it trains on
    seed: int
    steps: int | None = None  # default: the optimiser's budget
    validation: Rows | None = None  # early stopping watches these
    on_check: Callable[[Check], None] | None = None
    held_out: Rows | None = None  # scored at every check for the history only


@dataclass
class _Progress:
    """What `train_steps` keeps per training, for one training of the stack."""

    budget: int
    batches: Iterator[torch.Tensor]  # positions of each batch's rows (`batch_order`)
    dropout: torch.Generator
    checks: list[Check] = field(default_factory=list)
    best_loss: float = float("inf")
    best_step: int = 0
    best_state: list[torch.Tensor] | None = None
    since_best: int = 0
    early_stopped: bool = False
    window_seen: int = 0  # rows since the last check (their loss and hits: the stack's)


def _linears(model: ScatNet) -> list[nn.Linear]:
    return [layer for layer in model.head.layers if isinstance(layer, nn.Linear)]


class _Stack:
    """The weights (transposed: M x in x out), biases (M x 1 x out), momentum buffers and
    standardisation of the trainings still running, and their running loss (summed over rows)
    and hits since their last check, kept on the device so that steps need no host copy."""

    def __init__(self, models: list[ScatNet], momentum: float, device: torch.device):
        layers = [_linears(model) for model in models]
        depth = len(layers[0])
        self.weights = [
            torch.stack([m[i].weight.detach().t() for m in layers]).to(device) for i in range(depth)
        ]
        self.biases = [
            torch.stack([m[i].bias.detach() for m in layers]).unsqueeze(1).to(device)
            for i in range(depth)
        ]
        self.momenta = (
            [torch.zeros_like(p) for p in self.weights + self.biases] if momentum else None
        )
        self.mean = torch.stack([m.coefficient_mean.flatten() for m in models]).unsqueeze(1)
        self.std = torch.stack([m.coefficient_std.flatten() for m in models]).unsqueeze(1)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        self.window_loss = torch.zeros(len(models), dtype=torch.float64, device=device)
        self.window_correct = torch.zeros(len(models), dtype=torch.long, device=device)

    def tensors(self) -> list[torch.Tensor]:
        return self.weights + self.biases + (self.momenta or []) + [self.mean, self.std]

    def window(self, position: int) -> tuple[float, int]:
        """One training's summed loss and hits since its last check, which start again."""
        loss, correct = float(self.window_loss[position]), int(self.window_correct[position])
        self.window_loss[position], self.window_correct[position] = 0, 0
        return loss, correct

    def keep(self, kept: torch.Tensor) -> None:
        """Only the trainings at positions `kept` stay (one copy of everything)."""
        depth = len(self.weights)
        chosen = [tensor.index_select(0, kept) for tensor in self.tensors()]
        self.window_loss = self.window_loss.index_select(0, kept)
        self.window_correct = self.window_correct.index_select(0, kept)
        self.weights, self.biases = chosen[:depth], chosen[depth : 2 * depth]
        self.momenta = chosen[2 * depth : 4 * depth] if self.momenta is not None else None
        self.mean, self.std = chosen[-2], chosen[-1]

    def state(self, position: int) -> list[torch.Tensor]:
        """A copy of one training's weights and biases, as the stack holds them."""
        return [p[position].clone() for p in self.weights + self.biases]

    def load(self, position: int, state: list[torch.Tensor]) -> None:
        for target, value in zip(self.weights + self.biases, state, strict=True):
            target[position].copy_(value)

    def write_back(self, position: int, model: ScatNet) -> None:
        """The training's weights into its module, in nn.Linear's layout."""
        with torch.no_grad():
            for layer, weight, bias in zip(_linears(model), self.weights, self.biases, strict=True):
                layer.weight.copy_(weight[position].t())
                layer.bias.copy_(bias[position, 0])


def _affine(
    bias: torch.Tensor, inputs: torch.Tensor, weight: torch.Tensor, precision: str
) -> torch.Tensor:
    """bias + inputs @ weight for every training, in float32 or bf16 (float32 result)."""
    if precision == BF16:
        return torch.baddbmm(bias.bfloat16(), inputs.bfloat16(), weight.bfloat16()).float()
    return torch.baddbmm(bias, inputs, weight)


def _add_product(
    target: torch.Tensor,
    left: torch.Tensor,
    right: torch.Tensor,
    alpha: float,
    beta: float,
    precision: str,
) -> None:
    """target = beta * target + alpha * left @ right in place: the product is never stored."""
    if precision == BF16:
        target.mul_(beta).add_(torch.bmm(left.bfloat16(), right.bfloat16()), alpha=alpha)
    else:
        target.baddbmm_(left, right, beta=beta, alpha=alpha)


def _logits(
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
    inputs: torch.Tensor,
    dropout: float,
    masks: torch.Tensor | None,
    precision: str,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits (M x B x classes) of standardised inputs (M x B x features), and the activations
    the backward pass reads: each layer's input, the last one after dropout (`masks`)."""
    activations = [inputs]
    for weight, bias in zip(weights[:-1], biases[:-1], strict=True):
        activations.append(torch.relu(_affine(bias, activations[-1], weight, precision)))
    if masks is not None:
        activations[-1] = activations[-1] * masks / (1 - dropout)
    return _affine(biases[-1], activations[-1], weights[-1], precision), activations


def _step(
    stack: _Stack,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    masks: torch.Tensor | None,
    optimiser: OptimiserConfig,
    dropout: float,
    precision: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step of every training (as `torch.optim.SGD` with momentum, no dampening) on
    cross-entropy averaged over each training's own rows (`weights`: 1/rows, 0 for padding).
    Returns each training's logits and mean loss."""
    logits, activations = _logits(stack.weights, stack.biases, inputs, dropout, masks, precision)
    log_p = torch.log_softmax(logits, dim=2)
    per_row = -log_p.gather(2, targets.unsqueeze(2)).squeeze(2)
    loss = (per_row * weights).sum(1)
    grad = log_p.exp()
    grad.scatter_add_(2, targets.unsqueeze(2), torch.full_like(per_row, -1.0).unsqueeze(2))
    grad *= weights.unsqueeze(2)
    depth = len(stack.weights)
    beta = optimiser.momentum
    for layer in reversed(range(depth)):
        below = activations[layer]
        if layer:  # the input's gradient, before this layer's weights move
            passed = torch.bmm(grad, stack.weights[layer].transpose(1, 2))
            if layer == depth - 1 and masks is not None:
                passed = passed / (1 - dropout) * masks
            passed *= below > 0
        bias_grad = grad.sum(1, keepdim=True)
        if stack.momenta is None:
            _add_product(
                stack.weights[layer], below.transpose(1, 2), grad, -optimiser.lr, 1.0, precision
            )
            stack.biases[layer].add_(bias_grad, alpha=-optimiser.lr)
        else:
            weight_buffer, bias_buffer = stack.momenta[layer], stack.momenta[depth + layer]
            _add_product(weight_buffer, below.transpose(1, 2), grad, 1.0, beta, precision)
            bias_buffer.mul_(beta).add_(bias_grad)
            stack.weights[layer].add_(weight_buffer, alpha=-optimiser.lr)
            stack.biases[layer].add_(bias_buffer, alpha=-optimiser.lr)
        if layer:
            grad = passed
    return logits, loss


def _predict(
    stack: _Stack, position: int, rows: Rows, batch_size: int, precision: str
) -> torch.Tensor:
    """Evaluation-mode logits (on the CPU) of one training for `rows`, batch by batch."""
    weights = [weight[position : position + 1] for weight in stack.weights]
    biases = [bias[position : position + 1] for bias in stack.biases]
    mean, std = stack.mean[position : position + 1], stack.std[position : position + 1]
    outputs = []
    for start in range(0, len(rows), batch_size):
        chunk = rows.inputs[rows.index[start : start + batch_size]].to(mean.device)
        features = (chunk.flatten(1).unsqueeze(0) - mean) / std
        outputs.append(_logits(weights, biases, features, 0.0, None, precision)[0][0].cpu())
    return torch.cat(outputs) if outputs else torch.empty(0, 2)


def train_heads(
    trainings: list[HeadTraining],
    optimiser: OptimiserConfig,
    device: torch.device | None = None,
    precision: str = "float32",
) -> list[Trained]:
    """Every training of `trainings` (ScatNets of one head shape, standardisation fitted) for
    its step budget, together; each model ends holding its trained (or, with validation, its
    best) weights, in eval mode on `device`. One `Trained` per training, in order, as
    `train_steps` would return it for that training alone."""
    device = device or resolve_device()
    if not trainings:
        return []
    dropout = trainings[0].model.head.layers[-2].p
    trainings = _moved(trainings, device)
    progress = []
    for training in trainings:
        training.model.to(device).train()
        progress.append(
            _Progress(
                budget=optimiser.steps if training.steps is None else training.steps,
                batches=batch_order(
                    len(training.train),
                    optimiser.batch_size,
                    torch.Generator().manual_seed(training.seed),
                ),
                dropout=torch.Generator(device=device).manual_seed(training.seed + 1),
            )
        )
        progress[-1].best_step = progress[-1].budget
    stack = _Stack([t.model for t in trainings], optimiser.momentum, device)
    running = list(range(len(trainings)))  # training of each stack position
    rows = min(optimiser.batch_size, max(len(t.train) for t in trainings))
    hidden = stack.weights[-1].shape[1]
    # Rows as feature vectors: a view, never a copy of the (possibly memory-mapped) cache.
    features = trainings[0].train.inputs.view(len(trainings[0].train.inputs), -1)
    batch = torch.empty(0, device=device)  # the stack's batch, gathered in place every step
    step = 0
    while running:
        step += 1
        count = len(running)
        index = torch.zeros(count, rows, dtype=torch.long)
        targets = torch.zeros(count, rows, dtype=torch.long)
        weights = torch.zeros(count, rows)
        masks = torch.zeros(count, rows, hidden, device=device) if dropout else None
        sizes = []
        for position, number in enumerate(running):
            train, state = trainings[number].train, progress[number]
            chosen = train.index[next(state.batches)]
            size = len(chosen)
            sizes.append(size)
            index[position, :size], index[position, size:] = chosen, chosen[0]
            targets[position, :size] = train.labels[chosen]
            weights[position, :size] = 1 / size
            if masks is not None:
                draw = torch.empty(size, hidden, device=device)
                masks[position, :size] = draw.bernoulli_(1 - dropout, generator=state.dropout)
        if len(batch) != count:
            batch = torch.empty(count, rows, features.shape[1], device=device)
        torch.index_select(
            features, 0, index.flatten().to(device), out=batch.view(count * rows, -1)
        )
        batch.sub_(stack.mean).div_(stack.std)
        targets, weights = targets.to(device, non_blocking=True), weights.to(device)
        logits, loss = _step(stack, batch, targets, weights, masks, optimiser, dropout, precision)
        counts = torch.tensor(sizes, dtype=torch.float64).to(device, non_blocking=True)
        stack.window_loss += loss.double() * counts
        stack.window_correct += ((logits.argmax(2) == targets) & (weights > 0)).sum(1)
        finished = []
        for position, number in enumerate(running):
            state, training = progress[number], trainings[number]
            state.window_seen += sizes[position]
            if step % optimiser.check_every and step != state.budget:
                continue
            if _check(stack, position, training, state, step, optimiser, precision):
                finished.append(position)
        if finished:
            for position in finished:
                _finish(stack, position, trainings[running[position]], progress[running[position]])
            kept = [p for p in range(len(running)) if p not in finished]
            running = [running[p] for p in kept]
            if running:
                stack.keep(torch.tensor(kept, device=device))
    return [
        Trained(
            pd.DataFrame([asdict(check) for check in state.checks]),
            state.best_step if training.validation is not None else state.budget,
            state.early_stopped,
        )
        for training, state in zip(trainings, progress, strict=True)
    ]


def heads_per_stack(config: GlassesConfig) -> int:
    """How many ScatNet trainings of `config` stack: as many as `runtime.stack_memory_mb` holds
    of their first layers' float32 weights, at least one. (Each also holds them once more in its
    module, and in a momentum buffer or its best check's copy where it has one.)"""
    scatnet = config.scatnet
    side = config.data.image_size // 2**scatnet.J
    features = 3 * coefficient_count(scatnet.J, scatnet.L) * side * side
    units = scatnet.head.hidden[0] if scatnet.head.hidden else 2
    return max(1, config.runtime.stack_memory_mb * 2**20 // (4 * features * units))


def _moved(trainings: list[HeadTraining], device: torch.device) -> list[HeadTraining]:
    """The trainings reading the rows they use from one copy on `device`, made once: batches
    are then gathered there, and only their row numbers travel each step. On the CPU, the
    shared (possibly memory-mapped) coefficients as they are."""
    inputs = trainings[0].train.inputs
    if any(training.train.inputs is not inputs for training in trainings):
        raise ValueError("stacked trainings must read one coefficient tensor (the shared cache)")
    if device.type == "cpu":
        return trainings
    parts = [t.train for t in trainings]
    parts += [part for t in trainings for part in (t.validation, t.held_out) if part is not None]
    used = torch.unique(torch.cat([part.index for part in parts]))
    where = torch.full((len(inputs),), -1, dtype=torch.long)
    where[used] = torch.arange(len(used))
    moved = inputs[used].to(device)

    def remapped(part: Rows | None) -> Rows | None:
        return None if part is None else Rows(moved, part.labels, where[part.index])

    return [
        replace(
            t,
            train=remapped(t.train),
            validation=remapped(t.validation),
            held_out=remapped(t.held_out),
        )
        for t in trainings
    ]


def _check(
    stack: _Stack,
    position: int,
    training: HeadTraining,
    state: _Progress,
    step: int,
    optimiser: OptimiserConfig,
    precision: str,
) -> bool:
    """A check of one training (as `train_steps` makes it, held-out rows included); whether
    that training is done."""
    loss, correct = stack.window(position)
    check = Check(step, loss / state.window_seen, correct / state.window_seen)
    state.window_seen = 0
    validation = training.validation
    if validation is not None:
        logits = _predict(stack, position, validation, optimiser.batch_size * 4, precision)
        check = validated(check, logits, validation)
        state.since_best += 1
        if check.val_loss < state.best_loss:
            state.best_loss, state.best_step, state.since_best = check.val_loss, step, 0
            state.best_state = stack.state(position)
    if training.held_out is not None:
        logits = _predict(stack, position, training.held_out, optimiser.batch_size * 4, precision)
        check = validated(check, logits, training.held_out, "held_out")
    state.checks.append(check)
    if training.on_check is not None:
        training.on_check(check)
    if validation is not None and 0 < optimiser.patience <= state.since_best:
        state.early_stopped = step < state.budget
        return True
    return step >= state.budget


def _finish(stack: _Stack, position: int, training: HeadTraining, state: _Progress) -> None:
    """The training's final (or best) weights into its module, which leaves training mode."""
    if state.best_state is not None:
        stack.load(position, state.best_state)
    stack.write_back(position, training.model)
    training.model.eval()


__all__ = ["HeadTraining", "heads_per_stack", "train_heads"]
