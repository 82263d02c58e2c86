"""
The baseline GPT trainer for MLX (Apple Silicon), written to be edited. Everything in this file is
yours to change: architecture, optimizer, schedule, batch sizes. Run it with `arp train`.

It is the same model, optimizer and schedule as the torch template (train_template.py), written
for MLX: lazy arrays, `mx.compile`, explicit dtypes. The torch and MLX versions agree numerically
(the package's parity tests load the same weights into both).

What is NOT in this file (and must not be imitated here): data loading, tokenization, the budget
clock, evaluation and the ledger. Those belong to the harness (`rt` below), which is the same for
every run, so that val_bpb numbers stay comparable.

One file, top to bottom: hyperparameters, model, optimizer, training loop.
"""

import math

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map

from autoresearch_portable.harness.run.runtime import Runtime

# ---------------------------------------------------------------------------------------------
# Hyperparameters. `arp init` sized the first block for this device; change anything.

DEPTH = 4                    # number of transformer blocks
MODEL_DIM = 256              # width of the residual stream
HEAD_DIM = 64                # channels per attention head (MODEL_DIM // HEAD_DIM heads)
DEVICE_BATCH_SIZE = 8        # rows per forward/backward pass (lower it if you run out of memory)
TOTAL_BATCH_SIZE = 2**14     # tokens per optimizer step (gradient accumulation makes up the rest)

WINDOW_PATTERN = "SSSL"      # per layer: S = short sliding window, L = full causal; last layer is L
SHORT_WINDOW_FRAC = 0.5      # S layers attend to this fraction of the sequence length
MLP_RATIO = 4                # hidden width of the MLP, in multiples of MODEL_DIM
ROPE_BASE = 10000.0          # rotary embedding base
LOGIT_SOFTCAP = 15.0         # logits = cap * tanh(logits / cap)

MATRIX_LR = 0.02             # Muon, for the 2D weights inside the blocks
EMBEDDING_LR = 0.3           # AdamW, token and value embeddings
UNEMBEDDING_LR = 0.004       # AdamW, the output head
SCALAR_LR = 0.5              # AdamW, per-layer residual and x0 mixing scalars
WEIGHT_DECAY = 0.2           # cautious weight decay on the Muon matrices
ADAM_BETAS = (0.8, 0.95)
MUON_MOMENTUM = 0.95
WARMUP_FRAC = 0.0            # fraction of the budget spent ramping the LR up
WARMDOWN_FRAC = 0.5          # fraction of the budget at the end spent decaying the LR
FINAL_LR_FRAC = 0.0          # LR multiplier reached at the very end
SEED = 42

# ---------------------------------------------------------------------------------------------
# The harness: budget, device plan and kernels (rt.backend), dataset (seq_len, vocab size).

rt = Runtime()
K = rt.backend               # attention, rms_norm, rotary, compile, device, dtype, ...
SEQ_LEN = rt.seq_len
VOCAB_SIZE = rt.vocab_size
DTYPE = K.dtype              # compute dtype (bf16 or fp32); weights and optimizer state stay fp32
mx.random.seed(SEED)

# ---------------------------------------------------------------------------------------------
# Model
#
# Dtypes are explicit in MLX (there is no autocast): parameters are fp32 "master" weights, cast to
# DTYPE where they are used, so the residual stream and the matmuls run in DTYPE and gradients
# come back in fp32. Beware: an fp32 array (a weight, a scalar parameter, mx.array(0.5)) mixed
# into a bf16 expression silently promotes it to fp32; plain Python numbers do not.


def norm(x):
    return K.rms_norm(x)  # RMSNorm without learnable gain


def rotary(x):
    # x: (B, H, T, D); rotate the two halves of each head's channels by position-dependent angles,
    # (x1*cos + x2*sin, x2*cos - x1*sin) as in the torch template, with mx.fast.rope
    return K.rotary(x, ROPE_BASE)


def has_value_embedding(layer, n_layer):
    # every other layer gets a value embedding, always including the last one
    return layer % 2 == (n_layer - 1) % 2


class Linear(nn.Linear):
    """A bias-free linear layer that computes in its input's dtype (fp32 weight cast on use)."""

    def __init__(self, in_dim, out_dim):
        super().__init__(in_dim, out_dim, bias=False)

    def __call__(self, x):
        return x @ self.weight.astype(x.dtype).T


class Attention(nn.Module):
    def __init__(self, layer, dim, head_dim, n_layer):
        super().__init__()
        self.n_head, self.head_dim = dim // head_dim, head_dim
        self.c_q = Linear(dim, dim)
        self.c_k = Linear(dim, dim)
        self.c_v = Linear(dim, dim)
        self.c_proj = Linear(dim, dim)
        # value-embedding gate: a few channels of the input decide, per head, how much of the
        # token's own value embedding is mixed into the attention values
        self.ve_gate_channels = min(32, dim)
        if has_value_embedding(layer, n_layer):
            self.ve_gate = Linear(self.ve_gate_channels, self.n_head)

    def heads(self, t):
        # (B, T, C) -> (B, H, T, D)
        B, T, _ = t.shape
        return t.reshape(B, T, self.n_head, self.head_dim).transpose(0, 2, 1, 3)

    def __call__(self, x, ve, window):
        B, T, C = x.shape
        q, k, v = self.heads(self.c_q(x)), self.heads(self.c_k(x)), self.heads(self.c_v(x))
        if ve is not None:
            gate = 2 * mx.sigmoid(self.ve_gate(x[..., : self.ve_gate_channels]))  # (B, T, H), 1 at init
            v = v + gate.transpose(0, 2, 1)[..., None] * self.heads(ve)
        q, k = norm(rotary(q)), norm(rotary(k))  # QK-norm keeps logits tame
        y = K.attention(q, k, v, window)  # causal; window w = itself + w keys before
        return self.c_proj(y.transpose(0, 2, 1, 3).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.c_fc = Linear(dim, MLP_RATIO * dim)
        self.c_proj = Linear(MLP_RATIO * dim, dim)

    def __call__(self, x):
        return self.c_proj(mx.square(nn.relu(self.c_fc(x))))  # ReLU^2


class Block(nn.Module):
    def __init__(self, layer, dim, head_dim, n_layer):
        super().__init__()
        self.attn = Attention(layer, dim, head_dim, n_layer)
        self.mlp = MLP(dim)

    def __call__(self, x, ve, window):
        x = x + self.attn(norm(x), ve, window)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, seq_len, n_layer, dim, head_dim):
        super().__init__()
        self.n_layer, self.dim = n_layer, dim
        self.wte = nn.Embedding(vocab_size, dim)
        self.value_embeds = {str(i): nn.Embedding(vocab_size, dim) for i in range(n_layer) if has_value_embedding(i, n_layer)}
        self.blocks = [Block(i, dim, head_dim, n_layer) for i in range(n_layer)]
        self.lm_head = Linear(dim, vocab_size)
        # per-layer mixing of the running residual and the first layer's input x0
        self.resid_lambdas = mx.ones((n_layer,))
        self.x0_lambdas = mx.zeros((n_layer,))
        # window per layer from the pattern; None = full causal (ints: not parameters)
        short = max(1, int(seq_len * SHORT_WINDOW_FRAC))
        pattern = [WINDOW_PATTERN[i % len(WINDOW_PATTERN)] for i in range(n_layer)]
        pattern[-1] = "L"
        self.windows = [short if p == "S" else None for p in pattern]

    def init_weights(self):
        bound = (3 / self.dim) ** 0.5  # uniform with std 1/sqrt(dim)

        def uniform(w):
            return mx.random.uniform(-bound, bound, w.shape)

        for block in self.blocks:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                lin.weight = uniform(lin.weight)
            block.attn.c_proj.weight = mx.zeros_like(block.attn.c_proj.weight)  # each block starts as the identity
            block.mlp.c_proj.weight = mx.zeros_like(block.mlp.c_proj.weight)
            if "ve_gate" in block.attn:
                block.attn.ve_gate.weight = mx.zeros_like(block.attn.ve_gate.weight)
        self.wte.weight = mx.random.normal(self.wte.weight.shape)
        for ve in self.value_embeds.values():
            ve.weight = uniform(ve.weight)
        self.lm_head.weight = 0.001 * mx.random.normal(self.lm_head.weight.shape)
        self.resid_lambdas = mx.ones((self.n_layer,))
        self.x0_lambdas = mx.full((self.n_layer,), 0.1)

    def __call__(self, idx, targets=None):
        x = x0 = norm(self.wte(idx).astype(DTYPE))
        resid, x0_mix = self.resid_lambdas.astype(DTYPE), self.x0_lambdas.astype(DTYPE)  # no fp32 promotion
        for i, block in enumerate(self.blocks):
            x = resid[i] * x + x0_mix[i] * x0
            ve = self.value_embeds[str(i)](idx).astype(DTYPE) if str(i) in self.value_embeds else None
            x = block(x, ve, self.windows[i])
        logits = self.lm_head(norm(x)).astype(mx.float32)  # softmax and loss in fp32
        logits = LOGIT_SOFTCAP * mx.tanh(logits / LOGIT_SOFTCAP)
        if targets is None:
            return logits
        return nn.losses.cross_entropy(logits, targets, reduction="mean")


# ---------------------------------------------------------------------------------------------
# Optimizer: Muon for the matrices inside the blocks, AdamW for everything else.
#
# Both work on the flat {name: array} view of the parameters (mlx.utils.tree_flatten) and keep
# their state in plain dicts of arrays created up front, so one optimizer step can be compiled
# with mx.compile (the state is then an input and an output of the compiled function).

# Polar Express: a fixed sequence of odd matrix polynomials that drives every singular value of
# X towards 1 (orthogonalization) in a few matmuls; coefficients from the Polar Express paper.
POLAR_EXPRESS_COEFFS = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]


def polar_express(G):
    X = G.astype(DTYPE if DTYPE != mx.float16 else mx.float32)  # fp16 overflows here
    transposed = X.shape[-2] > X.shape[-1]
    if transposed:
        X = X.T
    X = X / (mx.sqrt(mx.sum(mx.square(X.astype(mx.float32)))).astype(X.dtype) * 1.02 + 1e-6)
    for a, b, c in POLAR_EXPRESS_COEFFS:
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return (X.T if transposed else X).astype(G.dtype)


def fro_norm(x):
    return mx.sqrt(mx.sum(mx.square(x)))


class Muon:
    """Momentum, orthogonalized (Polar Express), then normalized per output row (NorMuon): each
    row's update is divided by a running RMS of that row, and the whole update rescaled back to its
    orthogonalized norm. Cautious weight decay: decay only where the update agrees in sign with
    the weight."""

    def __init__(self, params, lr, momentum, weight_decay, beta2=0.95):
        # params: {name: array} of 2D weights
        self.lr, self.momentum, self.weight_decay, self.beta2 = lr, momentum, weight_decay, beta2
        self.state = {n: dict(momentum=mx.zeros_like(p), row_var=mx.zeros((p.shape[0], 1), dtype=mx.float32)) for n, p in params.items()}

    def update(self, params, grads, lr_mult):
        """New values for the parameters in self.state; params, grads: flat {name: array}."""
        out = {}
        lr, wd = self.lr * lr_mult, self.weight_decay
        for name, state in self.state.items():
            p, grad = params[name], grads[name]
            buf = state["momentum"] + (1 - self.momentum) * (grad - state["momentum"])
            state["momentum"] = buf
            g = grad + self.momentum * (buf - grad)  # Nesterov
            u = polar_express(g).astype(mx.float32)
            # NorMuon: equalize the scale of rows, keep the overall norm
            u_norm = fro_norm(u)
            row_var = state["row_var"] + (1 - self.beta2) * (mx.mean(mx.square(u), axis=1, keepdims=True) - state["row_var"])
            state["row_var"] = row_var
            u = u / (mx.sqrt(row_var) + 1e-8)
            u = u * (u_norm / (fro_norm(u) + 1e-8))
            u = u * max(1.0, p.shape[0] / p.shape[1]) ** 0.5
            if wd > 0:
                p = p - lr * wd * p * ((u * p) > 0)  # cautious weight decay
            out[name] = p - lr * u.astype(p.dtype)
        return out


class AdamW:
    """AdamW as torch.optim.AdamW computes it (bias-corrected moments), one lr per group."""

    def __init__(self, groups, betas, eps):
        # groups: list of ({name: array}, lr)
        self.betas, self.eps = betas, eps
        self.lrs = {n: lr for params, lr in groups for n in params}
        self.state = dict(
            step=mx.array(0.0),
            m={n: mx.zeros_like(p) for params, _ in groups for n, p in params.items()},
            v={n: mx.zeros_like(p) for params, _ in groups for n, p in params.items()},
        )

    def update(self, params, grads, lr_mult):
        b1, b2 = self.betas
        step = self.state["step"] + 1
        self.state["step"] = step
        bc1, bc2 = 1 - b1**step, 1 - b2**step
        out = {}
        for name, lr in self.lrs.items():
            g = grads[name]
            m = self.state["m"][name] + (1 - b1) * (g - self.state["m"][name])
            v = self.state["v"][name] * b2 + (1 - b2) * mx.square(g)
            self.state["m"][name], self.state["v"][name] = m, v
            denom = mx.sqrt(v) / mx.sqrt(bc2) + self.eps
            out[name] = params[name] - (lr * lr_mult / bc1) * m / denom
        return out


def build_optimizers(model):
    params = dict(tree_flatten(model.trainable_parameters()))
    matrices = {n: p for n, p in params.items() if n.startswith("blocks.") and p.ndim == 2}
    # AdamW learning rates were tuned at width 768; scale them like 1/sqrt(width)
    scale = (model.dim / 768) ** -0.5
    embeddings = {n: p for n, p in params.items() if n == "wte.weight" or n.startswith("value_embeds.")}
    adam = AdamW(
        [
            (embeddings, EMBEDDING_LR * scale),
            ({"lm_head.weight": params["lm_head.weight"]}, UNEMBEDDING_LR * scale),
            ({n: params[n] for n in ("resid_lambdas", "x0_lambdas")}, SCALAR_LR),
        ],
        betas=ADAM_BETAS, eps=1e-10,
    )
    muon = Muon(matrices, lr=MATRIX_LR, momentum=MUON_MOMENTUM, weight_decay=WEIGHT_DECAY)
    covered = set(adam.lrs) | set(muon.state)
    assert covered == set(params), f"parameters without an optimizer: {sorted(set(params) - covered)}"
    return [adam, muon]


def set_parameter(module, name, value):
    # "blocks.0.attn.c_q.weight" -> module["blocks"][0]["attn"]["c_q"]["weight"] = value
    *path, leaf = name.split(".")
    for part in path:
        module = module[int(part)] if isinstance(module, list) else module[part]
    module[leaf] = value


def make_steps(model, optimizers):
    """The two halves of a training step, compiled where the plan compiles:
    grad_step(x, y) -> (loss, grads) and update_step(grads, lr_mult), which applies all optimizers.
    mx.compile traces pure functions: the model's and optimizers' arrays are declared as inputs
    and outputs of the compiled functions, or they would be frozen into the graph as constants."""
    state = [model.state, [opt.state for opt in optimizers]]
    loss_and_grad = nn.value_and_grad(model, lambda x, y: model(x, y))

    def optimizer_step(grads, lr_mult):
        params = dict(tree_flatten(model.trainable_parameters()))
        grads = dict(tree_flatten(grads))
        for opt in optimizers:
            for name, value in opt.update(params, grads, lr_mult).items():
                set_parameter(model, name, value)

    return K.compile(loss_and_grad, inputs=state, outputs=state), K.compile(optimizer_step, inputs=state, outputs=state)


def lr_multiplier(progress):
    # progress: fraction of the budget used so far (time in wall mode, FLOPs in work modes)
    if progress < WARMUP_FRAC:
        return (progress + 1e-8) / WARMUP_FRAC
    if progress < 1.0 - WARMDOWN_FRAC:
        return 1.0
    cooldown = (1.0 - progress) / WARMDOWN_FRAC
    return cooldown + (1 - cooldown) * FINAL_LR_FRAC


# ---------------------------------------------------------------------------------------------
# Training loop

model = GPT(VOCAB_SIZE, SEQ_LEN, DEPTH, MODEL_DIM, HEAD_DIM)
model.init_weights()
mx.eval(model.parameters())
optimizers = build_optimizers(model)

tokens_per_pass = DEVICE_BATCH_SIZE * SEQ_LEN
assert TOTAL_BATCH_SIZE % tokens_per_pass == 0, "TOTAL_BATCH_SIZE must be a multiple of DEVICE_BATCH_SIZE * SEQ_LEN"
grad_accum = TOTAL_BATCH_SIZE // tokens_per_pass

grad_step, update_step = make_steps(model, optimizers)

loader = rt.train_loader(DEVICE_BATCH_SIZE)  # yields (inputs, targets) as mx arrays
rt.start(model, config=dict(depth=DEPTH, model_dim=MODEL_DIM, head_dim=HEAD_DIM, device_batch_size=DEVICE_BATCH_SIZE,
                            total_batch_size=TOTAL_BATCH_SIZE, window_pattern=WINDOW_PATTERN))
x, y = next(loader)
while not rt.done:
    grads = None
    for _ in range(grad_accum):
        loss, g = grad_step(x, y)
        grads = g if grads is None else tree_map(mx.add, grads, g)
        mx.async_eval(loss, grads)  # the device works while the next batch is fetched
        x, y = next(loader)
    if grad_accum > 1:
        grads = tree_map(lambda g: g / grad_accum, grads)
    lrm = lr_multiplier(rt.progress)
    update_step(grads, mx.array(lrm, dtype=mx.float32))
    mx.eval(loss, model.parameters(), [opt.state for opt in optimizers])
    train_loss = loss.item()
    if not math.isfinite(train_loss) or train_loss > 100:  # fast fail: it will not recover
        rt.fail(f"training loss diverged ({train_loss})")
    rt.step(train_loss)

rt.finish(model)  # causality check, val_bpb from the model's logits, summary, result
