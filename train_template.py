"""
The baseline GPT trainer, written to be edited. Everything in this file is yours to change:
architecture, optimizer, schedule, batch sizes. Run it with `arp train`.

What is NOT in this file (and must not be imitated here): data loading, tokenization, the budget
clock, evaluation and the ledger. Those belong to the harness (`rt` below), which is the same for
every run, so that val_bpb numbers stay comparable.

One file, top to bottom: hyperparameters, model, optimizer, training loop.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

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
K = rt.backend               # attention, rms_norm, autocast, compile, device, ...
SEQ_LEN = rt.seq_len
VOCAB_SIZE = rt.vocab_size
torch.manual_seed(SEED)

# ---------------------------------------------------------------------------------------------
# Model


def norm(x):
    return K.rms_norm(x)  # RMSNorm without learnable gain


def rotary(x, cos, sin):
    # x: (B, H, T, D); rotate the two halves of each head's channels by position-dependent angles
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


def has_value_embedding(layer, n_layer):
    # every other layer gets a value embedding, always including the last one
    return layer % 2 == (n_layer - 1) % 2


class Attention(nn.Module):
    def __init__(self, layer, dim, head_dim, n_layer):
        super().__init__()
        self.n_head, self.head_dim = dim // head_dim, head_dim
        self.c_q = nn.Linear(dim, dim, bias=False)
        self.c_k = nn.Linear(dim, dim, bias=False)
        self.c_v = nn.Linear(dim, dim, bias=False)
        self.c_proj = nn.Linear(dim, dim, bias=False)
        # value-embedding gate: a few channels of the input decide, per head, how much of the
        # token's own value embedding is mixed into the attention values
        self.ve_gate_channels = min(32, dim)
        self.ve_gate = nn.Linear(self.ve_gate_channels, self.n_head, bias=False) if has_value_embedding(layer, n_layer) else None

    def forward(self, x, ve, cos, sin, window):
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.c_k(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        v = self.c_v(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        if ve is not None:
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., : self.ve_gate_channels]))  # (B, T, H), 1 at init
            v = v + gate.transpose(1, 2).unsqueeze(-1) * ve.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        q, k = norm(rotary(q, cos, sin)), norm(rotary(k, cos, sin))  # QK-norm keeps logits tame
        y = K.attention(q, k, v, window)  # causal; window w = itself + w keys before
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.c_fc = nn.Linear(dim, MLP_RATIO * dim, bias=False)
        self.c_proj = nn.Linear(MLP_RATIO * dim, dim, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())  # ReLU^2


class Block(nn.Module):
    def __init__(self, layer, dim, head_dim, n_layer):
        super().__init__()
        self.attn = Attention(layer, dim, head_dim, n_layer)
        self.mlp = MLP(dim)

    def forward(self, x, ve, cos, sin, window):
        x = x + self.attn(norm(x), ve, cos, sin, window)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, vocab_size, seq_len, n_layer, dim, head_dim):
        super().__init__()
        self.n_layer, self.dim = n_layer, dim
        self.wte = nn.Embedding(vocab_size, dim)
        self.value_embeds = nn.ModuleDict(
            {str(i): nn.Embedding(vocab_size, dim) for i in range(n_layer) if has_value_embedding(i, n_layer)}
        )
        self.blocks = nn.ModuleList([Block(i, dim, head_dim, n_layer) for i in range(n_layer)])
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)
        # per-layer mixing of the running residual and the first layer's input x0
        self.resid_lambdas = nn.Parameter(torch.ones(n_layer))
        self.x0_lambdas = nn.Parameter(torch.zeros(n_layer))
        # window per layer from the pattern; None = full causal
        short = max(1, int(seq_len * SHORT_WINDOW_FRAC))
        pattern = [WINDOW_PATTERN[i % len(WINDOW_PATTERN)] for i in range(n_layer)]
        pattern[-1] = "L"
        self.windows = [short if p == "S" else None for p in pattern]
        inv_freq = 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos()[None, None], persistent=False)
        self.register_buffer("sin", angles.sin()[None, None], persistent=False)

    @torch.no_grad()
    def init_weights(self):
        bound = (3 / self.dim) ** 0.5  # uniform with std 1/sqrt(dim)
        for block in self.blocks:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                lin.weight.uniform_(-bound, bound)
            block.attn.c_proj.weight.zero_()  # each block starts as the identity
            block.mlp.c_proj.weight.zero_()
            if block.attn.ve_gate is not None:
                block.attn.ve_gate.weight.zero_()
        self.wte.weight.normal_(0, 1)
        for ve in self.value_embeds.values():
            ve.weight.uniform_(-bound, bound)
        self.lm_head.weight.normal_(0, 0.001)
        self.resid_lambdas.fill_(1.0)
        self.x0_lambdas.fill_(0.1)

    def forward(self, idx, targets=None):
        T = idx.size(1)
        cos, sin = self.cos[:, :, :T], self.sin[:, :, :T]
        x = x0 = norm(self.wte(idx))
        for i, block in enumerate(self.blocks):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos, sin, self.windows[i])
        logits = self.lm_head(norm(x)).float()
        logits = LOGIT_SOFTCAP * torch.tanh(logits / LOGIT_SOFTCAP)
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


# ---------------------------------------------------------------------------------------------
# Optimizer: Muon for the matrices inside the blocks, AdamW for everything else.

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
    X = G.to(K.dtype) if K.dtype != torch.float16 else G.float()  # fp16 overflows here
    transposed = X.size(-2) > X.size(-1)
    if transposed:
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * 1.02 + 1e-6)
    for a, b, c in POLAR_EXPRESS_COEFFS:
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return (X.mT if transposed else X).to(G.dtype)


polar_express_kernel = K.compile(polar_express)


class Muon(torch.optim.Optimizer):
    """Momentum, orthogonalized (Polar Express), then normalized per output row (NorMuon): each
    row's update is divided by a running RMS of that row, and the whole update rescaled back to its
    orthogonalized norm. Cautious weight decay: decay only where the update agrees in sign with
    the weight.

    Matrices of the same shape form one parameter group and are updated together, stacked into one
    (n, rows, cols) batch: a handful of batched kernels per step instead of a few dozen per matrix
    (what matters where nothing is compiled, e.g. MPS). A group's state lives, stacked, with its
    first matrix."""

    def __init__(self, params, lr, momentum, weight_decay, beta2=0.95):
        by_shape = {}
        for p in params:
            by_shape.setdefault(tuple(p.shape), []).append(p)
        groups = [dict(params=same) for same in by_shape.values()]
        super().__init__(groups, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, beta2=beta2))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            params = group["params"]
            if all(p.grad is None for p in params):
                continue
            # a matrix without a gradient this step (unused by the model) counts as a zero gradient
            grads = torch.stack([p.grad if p.grad is not None else torch.zeros_like(p) for p in params])
            state = self.state[params[0]]
            if not state:
                state["momentum"] = torch.zeros_like(grads)
                state["row_var"] = torch.zeros(*grads.shape[:-1], 1, device=grads.device, dtype=torch.float32)
            buf = state["momentum"]
            buf.lerp_(grads, 1 - group["momentum"])
            g = grads.lerp(buf, group["momentum"])  # Nesterov
            u = polar_express_kernel(g).float()  # (n, rows, cols), each matrix orthogonalized
            # NorMuon: equalize the scale of rows, keep each matrix's overall norm
            u_norm = u.norm(dim=(-2, -1), keepdim=True)
            state["row_var"].lerp_(u.square().mean(dim=-1, keepdim=True), 1 - group["beta2"])
            u = u / (state["row_var"].sqrt() + 1e-8)
            u = u * (u_norm / (u.norm(dim=(-2, -1), keepdim=True) + 1e-8))
            u = u * max(1.0, u.size(-2) / u.size(-1)) ** 0.5
            lr, wd = group["lr"], group["weight_decay"]
            w = torch.stack(params)
            if wd > 0:
                w = w - lr * wd * w * ((u * w) > 0)  # cautious weight decay
            w = w - lr * u.to(w.dtype)
            for p, new in zip(params, w):
                p.copy_(new)


def build_optimizers(model):
    matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
    # AdamW learning rates were tuned at width 768; scale them like 1/sqrt(width)
    scale = (model.dim / 768) ** -0.5
    adam_groups = [
        dict(params=[model.wte.weight, *[e.weight for e in model.value_embeds.values()]], lr=EMBEDDING_LR * scale),
        dict(params=[model.lm_head.weight], lr=UNEMBEDDING_LR * scale),
        dict(params=[model.resid_lambdas, model.x0_lambdas], lr=SCALAR_LR),
    ]
    adam = torch.optim.AdamW(adam_groups, betas=ADAM_BETAS, eps=1e-10, weight_decay=0.0)
    muon = Muon(matrices, lr=MATRIX_LR, momentum=MUON_MOMENTUM, weight_decay=WEIGHT_DECAY)
    optimizers = [adam, muon]
    for opt in optimizers:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


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

model = GPT(VOCAB_SIZE, SEQ_LEN, DEPTH, MODEL_DIM, HEAD_DIM).to(K.device)
model.init_weights()
optimizers = build_optimizers(model)
train_model = K.compile(model)
scaler = K.grad_scaler()  # loss scaling, active only when computing in float16

tokens_per_pass = DEVICE_BATCH_SIZE * SEQ_LEN
assert TOTAL_BATCH_SIZE % tokens_per_pass == 0, "TOTAL_BATCH_SIZE must be a multiple of DEVICE_BATCH_SIZE * SEQ_LEN"
grad_accum = TOTAL_BATCH_SIZE // tokens_per_pass

loader = rt.train_loader(DEVICE_BATCH_SIZE)  # yields (inputs, targets) on the device
rt.start(model, config=dict(depth=DEPTH, model_dim=MODEL_DIM, head_dim=HEAD_DIM, device_batch_size=DEVICE_BATCH_SIZE,
                            total_batch_size=TOTAL_BATCH_SIZE, window_pattern=WINDOW_PATTERN))
x, y = next(loader)
while not rt.done:
    for _ in range(grad_accum):
        with K.autocast():
            loss = train_model(x, y)
        scaler.scale(loss / grad_accum).backward()
        x, y = next(loader)  # the next batch is fetched while the device still works
    lrm = lr_multiplier(rt.progress)
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * lrm
        scaler.step(opt)
    scaler.update()
    model.zero_grad(set_to_none=True)
    train_loss = loss.item()
    if not math.isfinite(train_loss) or train_loss > 100:  # fast fail: it will not recover
        rt.fail(f"training loss diverged ({train_loss})")
    rt.step(train_loss)

rt.finish(model)  # causality check, val_bpb from the model's logits, summary, result
