#!/usr/bin/env python3
"""compare_gpu.py: statebench's CUDA kernels and training steps beside the
public anchors, on the same shapes, in one run (issue 8).

Kernels, at the anchors' own benchmark shapes (default B 8, T 1024, H 8,
D 64; mamba Di = H D with 16 states; the LSTM d = H D), forward and
forward + backward:
  deltanet        flash-linear-attention chunk_delta_rule
  gated_deltanet  flash-linear-attention chunk_gated_delta_rule
  gla             flash-linear-attention chunk_gla
  mamba           mamba_ssm selective_scan_fn
  lstm            FlashRNN (cuda_fused and cuda) and torch.nn.LSTM (cuDNN;
                  it also computes the input projection, which ours and
                  FlashRNN take precomputed)
  attention       torch.nn.functional.scaled_dot_product_attention, causal
against `statebench bench --device cuda --kernels` (target: within 1.25x of
the best anchor, forward + backward).

Training steps (zero_grad + forward + loss + backward + AdamW), running
parity, batch 32: PyTorch reference models of statebench's shape (embedding
-> L pre-norm blocks of RMSNorm + mixer and RMSNorm + SwiGLU MLP of hidden
4d -> RMSNorm -> head, heads 4, shared/BASELINES.md) with the anchors as
mixers, against `statebench bench --device cuda` (target: at least 2x the
tokens/s of the best PyTorch model of that mixer).

torch is required; fla (package fla-core), mamba_ssm and flashrnn are
optional: an anchor whose package is missing or fails is skipped with a
note. Prints one Markdown report (also written to --out) with the GPU and
the versions. --cpu-dry-run runs everything at a tiny shape on the CPU,
with the anchors' reference forms (plain per-token loops) as mixers and
`statebench bench --device cpu` as ours, to check the script itself.
bench/README.md says how bench/gpu_check.sh runs it on the GPU machine.
"""
import argparse
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("compare_gpu.py: torch is required (pip install torch); it is on the GPU machine's image")

KERNEL_OPS = ["deltanet", "gated_deltanet", "gla", "attention", "mamba", "lstm"]  # FlashRNN compiles last
STEP_MIXERS = ["lstm", "deltanet", "gla", "gated_deltanet", "mamba", "attention"]
KERNEL_TARGET = 1.25  # ours / best anchor, forward + backward ms
STEP_TARGET = 2.0     # ours / best PyTorch, training tokens/s
PACKAGES = ["torch", "triton", "fla-core", "flash-linear-attention", "mamba_ssm", "causal_conv1d", "flashrnn",
            "einops", "ninja"]


class Stopped(BaseException):
    """A signal (the GPU check's stage limit) ended the run: the tables so far
    are still printed."""


def on_signal(signum, frame):
    signal.signal(signum, signal.SIG_DFL)
    raise Stopped(signal.Signals(signum).name)


def log(msg):
    print(f"[compare_gpu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def short_error(exc):
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ").replace("|", "/")
    return text if len(text) <= 160 else text[:157] + "..."


# ---- optional packages --------------------------------------------------

def try_import(what):
    """The module, or None plus the reason (kept for the report)."""
    try:
        if what == "fla":
            from fla.ops.delta_rule import chunk_delta_rule
            from fla.ops.gated_delta_rule import chunk_gated_delta_rule
            from fla.ops.gla import chunk_gla
            return {"chunk_delta_rule": chunk_delta_rule, "chunk_gated_delta_rule": chunk_gated_delta_rule,
                    "chunk_gla": chunk_gla}, None
        if what == "mamba":
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
            return {"selective_scan_fn": selective_scan_fn}, None
        if what == "flashrnn":
            from flashrnn import flashrnn
            return {"flashrnn": flashrnn}, None
    except Exception as exc:  # ImportError, or a CUDA / triton mismatch at import
        return None, short_error(exc)
    raise ValueError(what)


def versions():
    from importlib import metadata
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# ---- reference forms: the anchors' recurrences as plain loops -----------
# Used as the mixers' cores in --cpu-dry-run, and on the GPU to check, at a
# small shape, that each anchor is called with the semantics of our op.

def ref_delta_rule(q, k, v, beta, g=None, scale=None):
    """S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,
    o_t = scale S_t^T q_t. q, k (B,T,H,K); v (B,T,H,V); beta, g (B,T,H)."""
    B, T, H, K = q.shape
    scale = K ** -0.5 if scale is None else scale
    S = q.new_zeros(B, H, K, v.shape[-1])
    out = []
    for t in range(T):
        if g is not None:
            S = S * g[:, t].exp()[..., None, None]
        kt = k[:, t]
        pred = torch.einsum("bhk,bhkv->bhv", kt, S)
        S = S + torch.einsum("bhk,bhv->bhkv", kt, beta[:, t][..., None] * (v[:, t] - pred))
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    return torch.stack(out, 1)


def ref_gla(q, k, v, g, scale=None):
    """S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T, o_t = scale S_t^T q_t; g (B,T,H,K)."""
    B, T, H, K = q.shape
    scale = K ** -0.5 if scale is None else scale
    S = q.new_zeros(B, H, K, v.shape[-1])
    out = []
    for t in range(T):
        S = S * g[:, t].exp()[..., None] + torch.einsum("bhk,bhv->bhkv", k[:, t], v[:, t])
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, t] * scale, S))
    return torch.stack(out, 1)


def ref_selective_scan(u, delta, A, Bm, Cm, D, z, delta_bias):
    """mamba's selective_scan_fn with delta_softplus: u, delta, z (B,Di,T);
    A (Di,N); Bm, Cm (B,N,T); D (Di). Returns y (B,Di,T)."""
    dt = F.softplus(delta + delta_bias[None, :, None])
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        h = torch.exp(dt[:, :, t, None] * A) * h + (dt[:, :, t] * u[:, :, t])[..., None] * Bm[:, None, :, t]
        ys.append(torch.einsum("bdn,bn->bd", h, Cm[:, :, t]))
    y = torch.stack(ys, 2) + D[None, :, None] * u
    return y * F.silu(z)


def sdpa_causal(q, k, v):
    """q, k, v (B,H,T,D). PyTorch's fused attention where it has one."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[2]
    att = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return att.softmax(-1) @ v


# ---- the reference models -----------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class ShortConv(nn.Module):
    """conv4: causal depthwise convolution of width 4 (no bias), then SiLU. x (B,T,C)."""

    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 4, groups=dim, padding=3, bias=False)

    def forward(self, x):
        return F.silu(self.conv(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2))


def rope(x, theta=1e4):
    """x (B,T,H,D), pairs (2i, 2i+1), angle t theta^(-2i/D), as statebench's rope_forward."""
    T, D = x.shape[1], x.shape[3]
    inv = theta ** (-torch.arange(0, D, 2, device=x.device, dtype=torch.float32) / D)
    ang = torch.arange(T, device=x.device, dtype=torch.float32)[:, None] * inv[None]
    cos, sin = ang.cos()[None, :, None].to(x.dtype), ang.sin()[None, :, None].to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, d, heads, impl):
        super().__init__()
        self.h = heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d, bias=False) for _ in range(4))

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = (w(x).view(B, T, self.h, d // self.h) for w in (self.wq, self.wk, self.wv))
        q, k = rope(q), rope(k)
        o = sdpa_causal(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.wo(o.transpose(1, 2).reshape(B, T, d))


class DeltaNet(nn.Module):
    """fla's DeltaNet layer as statebench's deltanet (gated: Gated DeltaNet)."""

    def __init__(self, d, heads, impl, gated=False):
        super().__init__()
        self.h, self.gated, self.impl = heads, gated, impl
        self.wq, self.wk, self.wv = (nn.Linear(d, d, bias=False) for _ in range(3))
        self.cq, self.ck, self.cv = (ShortConv(d) for _ in range(3))
        self.wbeta = nn.Linear(d, heads, bias=False)
        self.norm = RMSNorm(d // heads)
        self.wo = nn.Linear(d, d, bias=False)
        if gated:
            self.wa = nn.Linear(d, heads, bias=False)
            self.A_log = nn.Parameter(torch.log(torch.empty(heads).uniform_(1, 16)))
            self.dt_bias = nn.Parameter(torch.zeros(heads))
            self.wg = nn.Linear(d, d, bias=False)

    def forward(self, x):
        B, T, d = x.shape
        D = d // self.h
        q = F.normalize(self.cq(self.wq(x)).view(B, T, self.h, D), dim=-1, eps=1e-6)
        k = F.normalize(self.ck(self.wk(x)).view(B, T, self.h, D), dim=-1, eps=1e-6)
        v = self.cv(self.wv(x)).view(B, T, self.h, D)
        beta = torch.sigmoid(self.wbeta(x))
        if self.gated:
            g = -self.A_log.exp() * F.softplus(self.wa(x) + self.dt_bias)
            o = self.impl(q, k, v, beta, g)
            o = self.norm(o).reshape(B, T, d) * F.silu(self.wg(x))
        else:
            o = self.norm(self.impl(q, k, v, beta, None)).reshape(B, T, d)
        return self.wo(o)


class GLA(nn.Module):
    """fla's GatedLinearAttention as statebench's gla: K = V = d/H, decay of rank 16."""

    def __init__(self, d, heads, impl):
        super().__init__()
        self.h, self.impl = heads, impl
        self.wq, self.wk, self.wv, self.wg, self.wo = (nn.Linear(d, d, bias=False) for _ in range(5))
        self.w1 = nn.Linear(d, 16, bias=False)
        self.w2 = nn.Linear(16, d, bias=True)
        self.norm = RMSNorm(d // heads)

    def forward(self, x):
        B, T, d = x.shape
        shape = (B, T, self.h, d // self.h)
        q, k, v = self.wq(x).view(shape), self.wk(x).view(shape), self.wv(x).view(shape)
        g = (F.logsigmoid(self.w2(self.w1(x))) / 16).view(shape)
        o = self.norm(self.impl(q, k, v, g)).reshape(B, T, d)
        return self.wo(o * F.silu(self.wg(x)))


class Mamba(nn.Module):
    """Mamba-1 as statebench's mamba: inner 2d, 16 states, dt rank ceil(d/16)."""

    def __init__(self, d, heads, impl):
        super().__init__()
        self.di, self.n, self.r, self.impl = 2 * d, 16, math.ceil(d / 16), impl
        self.in_proj = nn.Linear(d, 2 * self.di, bias=False)
        self.conv = ShortConv(self.di)
        self.x_proj = nn.Linear(self.di, self.r + 2 * self.n, bias=False)
        self.dt_proj = nn.Linear(self.r, self.di, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, self.n + 1, dtype=torch.float32)).repeat(self.di, 1))
        self.D = nn.Parameter(torch.ones(self.di))
        self.out_proj = nn.Linear(self.di, d, bias=False)

    def forward(self, x):
        xi, z = self.in_proj(x).chunk(2, -1)
        xi = self.conv(xi)
        dt, Bm, Cm = self.x_proj(xi).split([self.r, self.n, self.n], -1)
        delta = (dt @ self.dt_proj.weight.t()).transpose(1, 2)
        y = self.impl(xi.transpose(1, 2).contiguous(), delta.contiguous(), -self.A_log.exp(),
                      Bm.transpose(1, 2).contiguous(), Cm.transpose(1, 2).contiguous(), self.D,
                      z.transpose(1, 2).contiguous(), self.dt_proj.bias)
        return self.out_proj(y.transpose(1, 2))


class LSTMcuDNN(nn.Module):
    def __init__(self, d, heads, impl):
        super().__init__()
        self.lstm = nn.LSTM(d, d, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


class LSTMFlashRNN(nn.Module):
    """gx = W x, then FlashRNN's LSTM recurrence (one head of d units)."""

    def __init__(self, d, heads, impl):
        super().__init__()
        self.d, self.impl = d, impl
        self.w = nn.Linear(d, 4 * d, bias=False)
        self.R = nn.Parameter(torch.empty(4, 1, d, d).uniform_(-d ** -0.5, d ** -0.5))
        self.b = nn.Parameter(torch.zeros(4, 1, d))

    def forward(self, x):
        B, T, _ = x.shape
        return self.impl(self.w(x).view(B, T, 4, 1, self.d), self.R, self.b).reshape(B, T, self.d)


class Block(nn.Module):
    def __init__(self, d, mixer):
        super().__init__()
        self.n1, self.n2, self.mixer = RMSNorm(d), RMSNorm(d), mixer
        self.mlp_in = nn.Linear(d, 8 * d, bias=False)
        self.mlp_out = nn.Linear(4 * d, d, bias=False)

    def forward(self, h):
        h = h + self.mixer(self.n1(h))
        gate, up = self.mlp_in(self.n2(h)).chunk(2, -1)
        return h + self.mlp_out(F.silu(gate) * up)


class Model(nn.Module):
    def __init__(self, d, layers, make_mixer):
        super().__init__()
        self.embed = nn.Embedding(2, d)
        self.blocks = nn.ModuleList(Block(d, make_mixer()) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, 2, bias=False)

    def forward(self, x):
        h = self.embed(x)
        for b in self.blocks:
            h = b(h)
        return self.head(self.norm(h))


# ---- anchors' cores behind one calling convention per mixer --------------

def mixer_variants(mods, dry_run, args):
    """{mixer: [(name, module class, core or None, reason it is missing)]}."""
    fla, fla_err = mods["fla"]
    mamba, mamba_err = mods["mamba"]
    frnn, frnn_err = mods["flashrnn"]

    def fla_delta(q, k, v, beta, g):
        if g is None:
            return fla["chunk_delta_rule"](q, k, v, beta)[0]
        return fla["chunk_gated_delta_rule"](q, k, v, g, beta)[0]

    def fla_gla(q, k, v, g):
        return fla["chunk_gla"](q, k, v, g)[0]

    def mamba_scan(u, delta, A, Bm, Cm, D, z, bias):
        return mamba["selective_scan_fn"](u, delta, A, Bm, Cm, D, z=z, delta_bias=bias, delta_softplus=True)

    def frnn_core(backend):
        def core(wx, R, b):
            return frnn["flashrnn"](Wx=wx, R=R, b=b, function="lstm", backend=backend, dtype="float32")[0][0]
        return core

    def ref_delta(q, k, v, beta, g):
        return ref_delta_rule(q, k, v, beta, g)

    def ref_lstm(wx, R, b):  # the LSTM recurrence as a loop (dry run only)
        B, T, _, _, d = wx.shape
        h = c = wx.new_zeros(B, d)
        out = []
        for t in range(T):
            pre = wx[:, t, :, 0] + torch.einsum("gde,be->bgd", R[:, 0], h) + b[:, 0]
            i, f, z, o = pre.unbind(1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(z)
            h = torch.sigmoid(o) * torch.tanh(c)
            out.append(h)
        return torch.stack(out, 1)

    if dry_run:
        return {
            "lstm": [("nn.LSTM", LSTMcuDNN, None, None), ("lstm reference loop", LSTMFlashRNN, ref_lstm, None)],
            "deltanet": [("delta rule reference loop", DeltaNet, ref_delta, None)],
            "gated_deltanet": [("gated delta rule reference loop", DeltaNet, ref_delta, None)],
            "gla": [("gla reference loop", GLA, ref_gla, None)],
            "mamba": [("selective scan reference loop", Mamba, ref_selective_scan, None)],
            "attention": [("SDPA" if hasattr(F, "scaled_dot_product_attention") else "masked softmax",
                           Attention, None, None)],
        }
    return {
        "lstm": [("nn.LSTM (cuDNN)", LSTMcuDNN, None, None)] + [
            (f"FlashRNN {be}", LSTMFlashRNN, frnn and frnn_core(be), frnn_err) for be in args.flashrnn_step_backends],
        "deltanet": [("fla chunk_delta_rule", DeltaNet, fla and fla_delta, fla_err)],
        "gated_deltanet": [("fla chunk_gated_delta_rule", DeltaNet, fla and fla_delta, fla_err)],
        "gla": [("fla chunk_gla", GLA, fla and fla_gla, fla_err)],
        "mamba": [("mamba_ssm selective_scan_fn", Mamba, mamba and mamba_scan, mamba_err)],
        "attention": [("SDPA causal", Attention, None, None)],
    }


# ---- timing ---------------------------------------------------------------

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_ms(fn, steps, warmup, device, before=None):
    """Median ms of fn() over steps calls after warmup untimed ones; before()
    runs untimed ahead of each call."""
    times = []
    for i in range(warmup + steps):
        if before:
            before()
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        if i >= warmup:
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def kernel_inputs(op, B, T, H, D, N, device, gen):
    """The anchor's inputs in its own layout, ranges as `bench --kernels`
    draws ours (unit keys, beta in (0.05, 0.95), decays in (0.9, 1), mamba's
    initial A and dt)."""
    def rnd(*shape, lo=-1.0, hi=1.0):
        return torch.rand(*shape, generator=gen, device="cpu").mul_(hi - lo).add_(lo).to(device)

    if op in ("deltanet", "gated_deltanet"):
        t = {"q": F.normalize(rnd(B, T, H, D), dim=-1), "k": F.normalize(rnd(B, T, H, D), dim=-1),
             "v": rnd(B, T, H, D), "beta": rnd(B, T, H, lo=0.05, hi=0.95), "do": rnd(B, T, H, D)}
        if op == "gated_deltanet":
            t["g"] = rnd(B, T, H, lo=0.9, hi=1.0).log()
        return t
    if op == "gla":
        return {"q": rnd(B, T, H, D), "k": rnd(B, T, H, D), "v": rnd(B, T, H, D),
                "g": rnd(B, T, H, D, lo=0.9, hi=1.0).log(), "do": rnd(B, T, H, D)}
    if op == "mamba":
        Di = H * D
        return {"u": rnd(B, Di, T), "delta": rnd(B, Di, T, lo=-6.9, hi=-2.3),
                "A": -torch.arange(1, N + 1, dtype=torch.float32, device=device).repeat(Di, 1),
                "Bm": rnd(B, N, T), "Cm": rnd(B, N, T), "D": torch.ones(Di, device=device), "z": rnd(B, Di, T),
                "bias": torch.zeros(Di, device=device), "do": rnd(B, Di, T)}
    if op == "lstm":
        d = H * D
        return {"wx": rnd(B, T, 4, 1, d), "R": rnd(4, 1, d, d, lo=-d ** -0.5, hi=d ** -0.5),
                "b": torch.zeros(4, 1, d, device=device), "x": rnd(B, T, d), "do": rnd(B, T, d)}
    if op == "attention":
        return {"q": rnd(B, H, T, D), "k": rnd(B, H, T, D), "v": rnd(B, H, T, D), "do": rnd(B, H, T, D)}
    raise ValueError(op)


def kernel_anchors(op, mods, dry_run, args):
    """[(anchor name, fn(t) -> output, reference fn or None, missing reason)]."""
    fla, fla_err = mods["fla"]
    mamba, mamba_err = mods["mamba"]
    frnn, frnn_err = mods["flashrnn"]
    if op == "deltanet":
        ref = lambda t: ref_delta_rule(t["q"], t["k"], t["v"], t["beta"])
        if dry_run:
            return [("delta rule reference loop", ref, None, None)]
        return [("fla chunk_delta_rule", fla and (lambda t: fla["chunk_delta_rule"](t["q"], t["k"], t["v"], t["beta"])[0]),
                 ref, fla_err)]
    if op == "gated_deltanet":
        ref = lambda t: ref_delta_rule(t["q"], t["k"], t["v"], t["beta"], t["g"])
        if dry_run:
            return [("gated delta rule reference loop", ref, None, None)]
        return [("fla chunk_gated_delta_rule",
                 fla and (lambda t: fla["chunk_gated_delta_rule"](t["q"], t["k"], t["v"], t["g"], t["beta"])[0]),
                 ref, fla_err)]
    if op == "gla":
        ref = lambda t: ref_gla(t["q"], t["k"], t["v"], t["g"])
        if dry_run:
            return [("gla reference loop", ref, None, None)]
        return [("fla chunk_gla", fla and (lambda t: fla["chunk_gla"](t["q"], t["k"], t["v"], t["g"])[0]), ref, fla_err)]
    if op == "mamba":
        ref = lambda t: ref_selective_scan(t["u"], t["delta"], t["A"], t["Bm"], t["Cm"], t["D"], t["z"], t["bias"])
        if dry_run:
            return [("selective scan reference loop", ref, None, None)]
        return [("mamba_ssm selective_scan_fn",
                 mamba and (lambda t: mamba["selective_scan_fn"](t["u"], t["delta"], t["A"], t["Bm"], t["Cm"], t["D"],
                                                                 z=t["z"], delta_bias=t["bias"],
                                                                 delta_softplus=True)),
                 ref, mamba_err)]
    if op == "lstm":
        out = []
        if not dry_run:
            for backend in args.flashrnn_backends:
                # h of the states (S,B,T,H,D) is (B,T,1,d)
                fn = frnn and (lambda t, be=backend: frnn["flashrnn"](
                    Wx=t["wx"], R=t["R"], b=t["b"], function="lstm", backend=be,
                    dtype="float32")[0][0].reshape(t["do"].shape))
                out.append((f"FlashRNN {backend}", fn, None, frnn_err))
        return out + [("nn.LSTM (cuDNN; + input projection)" if not dry_run else "nn.LSTM", "nn.LSTM", None, None)]
    if op == "attention":
        return [("SDPA causal", lambda t: sdpa_causal(t["q"], t["k"], t["v"]), None, None)]
    raise ValueError(op)


def time_kernel_anchor(op, name, fn, ref, t, args, device):
    """(fwd ms, fwd+bwd ms, note)."""
    grads, params = [k for k in t if k != "do"], []
    note = ""
    if fn == "nn.LSTM":
        d = t["x"].shape[-1]
        lstm = nn.LSTM(d, d, batch_first=True).to(device)
        fn = lambda tt: lstm(tt["x"])[0]
        grads, params = ["x"], list(lstm.parameters())
    if ref is not None and device.type == "cuda":
        try:
            note = check_semantics(op, fn, ref, args, device)
        except Exception as exc:
            note = f"semantics check failed: {short_error(exc)}"
    for k in grads:
        t[k].requires_grad_(False)
    with torch.no_grad():  # the forward alone, as for inference
        fwd = median_ms(lambda: fn(t), args.steps, args.warmup, device)
    for k in grads:
        t[k].requires_grad_(True)

    def clear():
        for k in grads:
            t[k].grad = None
        for w in params:
            w.grad = None
    fwd_bwd = median_ms(lambda: fn(t).backward(t["do"]), args.steps, args.warmup, device, before=clear)
    return fwd, fwd_bwd, note


def check_semantics(op, fn, ref, args, device):
    """The anchor against its reference loop at a small shape: the note says
    how far apart (TF32 inside triton kernels shows as ~1e-3)."""
    gen = torch.Generator().manual_seed(7)
    t = kernel_inputs(op, 2, 64, 2, 32, args.d_state, device, gen)
    with torch.no_grad():
        got, want = fn(t).float(), ref(t).float()
    if got.shape != want.shape:
        return f"semantics check: shape {tuple(got.shape)} vs reference {tuple(want.shape)}"
    err = ((got - want).norm() / want.norm().clamp_min(1e-30)).item()
    return f"vs reference loop: rel. error {err:.1e}" + (" (MISMATCH: not the same op)" if err > 2e-2 else "")


# ---- statebench's side ---------------------------------------------------

def run_statebench(args, extra, what):
    """Runs `statebench bench` with extra arguments, or reads the table
    --ours-WHAT-md saved from such a run: (its text or None, why not)."""
    saved = getattr(args, f"ours_{what}_md")
    if saved:
        try:
            with open(saved) as f:
                log(f"ours ({what}): read from {saved}")
                return f.read(), None
        except OSError as exc:
            return None, short_error(exc)
    device = "cpu" if args.cpu_dry_run else "cuda"
    cmd = [args.statebench, "bench", "--device", device, "--db", args.db] + extra
    log(f"ours ({what}): {' '.join(cmd)}")
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.ours_timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"ours ({what}) failed: {short_error(exc)}")
        return None, short_error(exc)
    if args.out:
        with open(args.out + f".statebench_{what}.md", "w") as f:
            f.write(res.stdout + res.stderr)
    if res.returncode != 0:
        log(f"ours ({what}) exited {res.returncode}: {res.stderr.strip()[-500:]}")
        return res.stdout, f"statebench exited {res.returncode}: {res.stderr.strip()[-200:]}"
    return res.stdout, None


def md_rows(text):
    for line in (text or "").splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            yield [c.strip() for c in line.strip().strip("|").split("|")]


def parse_kernel_table(text):
    """{op: (fwd ms, fwd+bwd ms, device, form)} from `bench --kernels`: per op
    the form (recurrent or chunked scan; "-" for ops with one) that was
    fastest forward + backward, as a tuned dispatch would pick."""
    out = {}
    for cells in md_rows(text):
        if len(cells) == 7 and cells[0] in KERNEL_OPS:
            row = (float(cells[5]), float(cells[6]), cells[4], cells[2])
            if cells[0] not in out or row[1] < out[cells[0]][1]:
                out[cells[0]] = row
    return out


def parse_step_table(text):
    """{(mixer, d, n, layers): (train tok/s, train ms/step, params)} from `bench`."""
    out = {}
    for cells in md_rows(text):
        if len(cells) == 13 and cells[0] in STEP_MIXERS and cells[1].isdigit():
            out[(cells[0], int(cells[1]), int(cells[2]), int(cells[12]))] = (float(cells[4]), float(cells[6]),
                                                                               int(cells[3]))
    return out


# ---- the two comparisons ---------------------------------------------------

def compare_kernels(args, mods, device, report):
    B, T, H, D = args.kernel_shape
    ours_text, ours_err = (None, "--skip-ours") if args.skip_ours else run_statebench(
        args, ["--kernels", "--batch", str(B), "--n", str(T), "--heads", str(H), "--head-dim", str(D),
               "--d-state", str(args.d_state), "--steps", str(args.steps)], "kernels")
    ours = parse_kernel_table(ours_text)
    detail, summary = [], []
    try:
        for op in args.ops:
            shape = f"B {B}, T {T}, Di {H * D}, N {args.d_state}" if op == "mamba" else (
                f"B {B}, T {T}, d {H * D}" if op == "lstm" else f"B {B}, T {T}, H {H}, D {D}")
            best = None
            for name, fn, ref, missing in kernel_anchors(op, mods, args.cpu_dry_run, args):
                if fn is None:
                    detail.append(f"| {op} | {name} | {shape} | | | skipped: {missing} |")
                    continue
                gen = torch.Generator().manual_seed(1234)
                try:
                    t = kernel_inputs(op, B, T, H, D, args.d_state, device, gen)
                    fwd, fwd_bwd, note = time_kernel_anchor(op, name, fn, ref, t, args, device)
                except Exception as exc:
                    detail.append(f"| {op} | {name} | {shape} | | | failed: {short_error(exc)} |")
                    log(f"{op} / {name}: {short_error(exc)}")
                    continue
                finally:
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                detail.append(f"| {op} | {name} | {shape} | {fwd:.3f} | {fwd_bwd:.3f} | {note} |")
                log(f"{op} / {name}: fwd {fwd:.3f} ms, fwd+bwd {fwd_bwd:.3f} ms {note}")
                if best is None or fwd_bwd < best[2]:
                    best = (name, fwd, fwd_bwd)
            mine = ours.get(op)
            cells = [op, shape] + ([f"{mine[0]:.3f}", f"{mine[1]:.3f}", mine[3]] if mine else ["", "", ""])
            cells += [best[0], f"{best[1]:.3f}", f"{best[2]:.3f}"] if best else ["", "", ""]
            if mine and best:
                ratio = mine[1] / best[2]
                cells += [f"{ratio:.2f}x", "yes" if ratio <= KERNEL_TARGET else "no"]
            else:
                cells += ["", "no anchor ran" if not best else f"ours missing ({ours_err or 'no row'})"]
            summary.append("| " + " | ".join(cells) + " |")
    finally:
        report.append(f"## Kernels: forward and forward + backward, ms (target: ours within {KERNEL_TARGET}x of the "
                      "best anchor, forward + backward)\n")
        report.append("| op | shape | ours fwd | ours fwd+bwd | our form | best anchor | its fwd | its fwd+bwd "
                      f"| ours / best | within {KERNEL_TARGET}x |")
        report.append("|---|---|---:|---:|---|---|---:|---:|---:|---|")
        report.extend(summary)
        report.append("\nEvery anchor timed:\n")
        report.append("| op | anchor | shape | fwd ms | fwd+bwd ms | note |")
        report.append("|---|---|---|---:|---:|---|")
        report.extend(detail)
        report.append("")


def time_step(model, opt, x, y, args, device):
    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1)).backward()
        opt.step()
    return median_ms(step, args.steps, args.warmup, device)


def make_optimizer(model, device):
    for kw in ({"fused": True}, {"foreach": True}, {}):
        if device.type != "cuda" and kw:
            continue
        try:
            return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, **kw), kw
        except (TypeError, RuntimeError):
            continue
    raise RuntimeError("no AdamW")


def compare_steps(args, mods, device, report):
    ours_text, ours_err = (None, "--skip-ours") if args.skip_ours else run_statebench(
        args, ["--mixers", ",".join(args.mixers), "--d", ",".join(map(str, args.d)), "--n",
               ",".join(map(str, args.n)), "--layers", ",".join(map(str, args.layers)), "--batch",
               str(args.batch), "--steps", str(args.steps)], "steps")
    ours = parse_step_table(ours_text)
    variants = mixer_variants(mods, args.cpu_dry_run, args)
    start = time.time()
    rows, detail, skipped = [], [], set()
    shapes = [(l, d, n) for l in args.layers for d in args.d for n in args.n]
    try:
        for layers, d, n in shapes:
            gen = torch.Generator().manual_seed(99)
            x = torch.randint(0, 2, (args.batch, n), generator=gen).to(device)
            y = x.cumsum(1).remainder(2)  # running parity
            for mixer in args.mixers:
                best = None
                for name, cls, core, missing in variants[mixer]:
                    if cls in (DeltaNet, GLA, Mamba, LSTMFlashRNN) and core is None:
                        if (mixer, name) not in skipped:
                            detail.append(f"| {mixer} | {name} | all | | | skipped: {missing} |")
                            skipped.add((mixer, name))
                        continue
                    if time.time() - start > args.budget:
                        detail.append(f"| {mixer} | {name} | L {layers}, d {d}, n {n} | | | not run: --budget "
                                      f"{args.budget:.0f} s spent |")
                        continue
                    try:
                        torch.manual_seed(0)
                        make = (lambda: cls(d, 4, core, gated=True)) if mixer == "gated_deltanet" else (
                            lambda: cls(d, 4, core))
                        model = Model(d, layers, make).to(device)
                        opt, kw = make_optimizer(model, device)
                        ms = time_step(model, opt, x, y, args, device)
                    except Exception as exc:
                        detail.append(f"| {mixer} | {name} | L {layers}, d {d}, n {n} | | | failed: {short_error(exc)} |")
                        log(f"step {mixer} / {name} L{layers} d{d} n{n}: {short_error(exc)}")
                        continue
                    finally:
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                    tps = args.batch * n / (ms * 1e-3)
                    params = sum(p.numel() for p in model.parameters())
                    detail.append(f"| {mixer} | {name} | L {layers}, d {d}, n {n} | {params} | {tps:.0f} | "
                                  f"AdamW {','.join(kw) or 'for-loop'}; {ms:.2f} ms/step |")
                    log(f"step {mixer} / {name} L{layers} d{d} n{n}: {tps:.0f} tok/s")
                    if best is None or tps > best[1]:
                        best = (name, tps, params)
                mine = ours.get((mixer, d, n, layers))
                cells = f"| {mixer} | {layers} | {d} | {n} | " + (f"{mine[0]:.0f} | " if mine else "| ")
                cells += f"{best[0]} | {best[1]:.0f} | " if best else "| | "
                cells += (f"{mine[2] if mine else '?'} / {best[2] if best else '?'} | ")
                if mine and best:
                    ratio = mine[0] / best[1]
                    cells += f"{ratio:.2f}x | {'yes' if ratio >= STEP_TARGET else 'no'} |"
                else:
                    cells += "| " + ("no PyTorch model ran" if not best else f"ours missing ({ours_err or 'no row'})") + " |"
                rows.append(cells)
    finally:
        report.append(f"## Training steps, batch {args.batch}, running parity: tokens/s (target: ours at least "
                      f"{STEP_TARGET}x the best PyTorch model)\n")
        report.append("| mixer | layers | d | n | ours tok/s | best PyTorch model | its tok/s | params ours / its "
                      f"| ours / best | >= {STEP_TARGET}x |")
        report.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---|")
        report.extend(rows)
        report.append("\nEvery PyTorch model timed:\n")
        report.append("| mixer | core | shape | params | tok/s | note |")
        report.append("|---|---|---|---:|---:|---|")
        report.extend(detail)
        report.append("")


def ints(text):
    return [int(v) for v in text.split(",") if v]


def names(allowed):
    def parse(text):
        got = [v for v in text.split(",") if v]
        bad = [v for v in got if v not in allowed]
        if bad or not got:
            raise argparse.ArgumentTypeError(f"{','.join(bad) or 'empty'}: allowed: {', '.join(allowed)}")
        return got
    return parse


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--statebench", default="bin/statebench", help="the binary (default bin/statebench)")
    p.add_argument("--kernel-shape", type=ints, default=[8, 1024, 8, 64], metavar="B,T,H,D",
                   help="the kernels' shape (default 8,1024,8,64)")
    p.add_argument("--d-state", type=int, default=16, help="mamba's states per channel (default 16)")
    p.add_argument("--ops", type=names(KERNEL_OPS), default=KERNEL_OPS, help="kernels to compare (default all)")
    p.add_argument("--mixers", type=names(STEP_MIXERS), default=STEP_MIXERS, help="training-step mixers (default all)")
    p.add_argument("--d", type=ints, default=[64, 128, 256], help="model widths (default 64,128,256)")
    p.add_argument("--layers", type=ints, default=[1, 2], help="layers (default 1,2)")
    p.add_argument("--n", type=ints, default=[64, 256, 512], help="sequence lengths (default 64,256,512)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="timed calls or steps, median reported (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--budget", type=float, default=240,
                   help="seconds for the PyTorch training steps; models not started by then are listed as not run")
    p.add_argument("--ours-timeout", type=float, default=300, help="seconds for each statebench run")
    p.add_argument("--skip", choices=["kernels", "steps"], action="append", default=[],
                   help="leave out a comparison (repeatable)")
    p.add_argument("--skip-ours", action="store_true", help="time the anchors only")
    p.add_argument("--ours-kernels-md", default="", metavar="FILE",
                   help="read ours from this saved `bench --kernels` output instead of running it")
    p.add_argument("--ours-steps-md", default="", metavar="FILE",
                   help="read ours from this saved `bench` output instead of running it")
    p.add_argument("--flashrnn-backends", type=names(["cuda_fused", "cuda"]), default=["cuda_fused", "cuda"],
                   help="FlashRNN backends for the kernel comparison (each compiles its kernels at first use)")
    p.add_argument("--flashrnn-step-backends", type=lambda v: names(["cuda_fused", "cuda"])(v) if v else [],
                   default=[], help="FlashRNN backends for the training steps (default none: FlashRNN compiles a "
                   "kernel per width and batch, minutes each)")
    p.add_argument("--db", default="", help="statebench's --db (default '': record nothing)")
    p.add_argument("--tf32", action="store_true",
                   help="let PyTorch's gemms and cuDNN use TF32 (default off: fp32 like statebench)")
    p.add_argument("--out", default="", help="also write the report here (and ours' raw tables beside it)")
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="tiny shapes on the CPU with the reference loops as cores, ours on --device cpu")
    args = p.parse_args(argv)
    if len(args.kernel_shape) != 4:
        p.error("--kernel-shape: expected B,T,H,D")
    if args.cpu_dry_run:
        args.kernel_shape = [2, 16, 2, 8] if args.kernel_shape == [8, 1024, 8, 64] else args.kernel_shape
        args.d_state = min(args.d_state, 4)
        args.d, args.n, args.layers, args.batch = [16], [8], [1, 2], 4
        args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)
        device = torch.device("cpu")
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            sys.exit("compare_gpu.py: no CUDA device for torch (use --cpu-dry-run to check the script on the CPU)")
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32
    needs_binary = not args.skip_ours and not (args.ours_kernels_md and args.ours_steps_md)
    if needs_binary and not os.access(args.statebench, os.X_OK):
        sys.exit(f"compare_gpu.py: {args.statebench} is not an executable (build it: make bin/statebench; "
                 "or --skip-ours)")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    mods = {"fla": try_import("fla"), "mamba": try_import("mamba"), "flashrnn": try_import("flashrnn")}
    report = ["# statebench vs the public anchors" + (" (CPU dry run: not a measurement)" if args.cpu_dry_run else ""),
              ""]
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu"
    report.append(f"- device: {gpu}" + (f"; CUDA {torch.version.cuda}; compute capability "
                                        f"{torch.cuda.get_device_capability(0)}" if device.type == "cuda" else ""))
    report.append(f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; host {platform.node()}; Python "
                  f"{platform.python_version()}")
    report.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    if os.access(args.statebench, os.X_OK):
        try:
            ver = subprocess.run([args.statebench, "version"], capture_output=True, text=True, timeout=60).stdout
            report.append("- statebench: " + " / ".join(ver.strip().splitlines()[:2]))
        except (OSError, subprocess.TimeoutExpired) as exc:
            report.append(f"- statebench: version failed: {short_error(exc)}")
    report.append(f"- precision: fp32 everywhere (PyTorch TF32 {'on' if args.tf32 else 'off'}; triton kernels may "
                  "use TF32 in their dots: see the anchors' errors against the reference loops)")
    for key, (mod, err) in mods.items():
        if mod is None:
            report.append(f"- {key}: not available ({err})")
    report.append(f"- timing: median of {args.steps} after {args.warmup} untimed, synchronised before and after; "
                  f"kernels' shape B,T,H,D = {','.join(map(str, args.kernel_shape))}, mamba N {args.d_state}")
    report.append("")
    rc = 0
    try:
        if "kernels" not in args.skip:
            compare_kernels(args, mods, device, report)
        if "steps" not in args.skip:
            compare_steps(args, mods, device, report)
    except Stopped as stop:
        report.append(f"**Stopped by {stop}: the tables above hold what was timed before it.**")
        rc = 1
    text = "\n".join(report)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
