"""nanoGPT's baby GPT for shakespeare_char, in PyTorch: the check of the Keras peer
(`_transformer`) against nanoGPT's own recipe in nanoGPT's own framework.

Run as a child process, so that the package and the other experiments never import
PyTorch (and this module never imports TensorFlow): by `experiments.gpt_peers`, trained
alone for its minutes,

    python -m experiments._nanogpt --job JOB.json --out RESULT.json

and by `experiments.quality` (`_contenders.ChildContender`), trained in turns with the
other contenders, each turn a command on stdin answered by one JSON line on stdout
(`serve`; its log, if any, on stderr):

    python -m experiments._nanogpt --serve

The recipe (nanoGPT's README, its CPU command for shakespeare_char; `_windows.Recipe`):
4 pre-LayerNorm blocks of causal self-attention (4 heads) and a 4x GELU MLP, width 128,
context 64, batch 12, dropout 0, no biases, LayerNorms without bias, a final LayerNorm
and the head tied to the token embedding; weights N(0, 0.02), the two projections into
the residual stream N(0, 0.02/sqrt(2·layers)). AdamW (lr 1e-3, betas 0.9/0.99, weight
decay 0.1 on every parameter of 2 or more dimensions: the matrices and both embeddings,
as nanoGPT's `configure_optimizers`), global-norm clip 1.0; a linear warm-up of 100
steps, then a cosine to 1e-4 over the fraction of the time budget spent (as the Keras
peer's `WarmupCosine` and `tf_rnn.train.budget`). Written from that description, not from
nanoGPT's code.

The job file (JSON): "train", "valid" (.npy files of ids, relative to the job file's
folder), "alphabet_size", "minutes"; optional: "name" (for the log), "seed", "settings"
(`_windows.Recipe` fields to change), "threads" (0: every core), "streams" (default true:
score `_windows.scoring_windows`' characters), "windows" (> 0: also that many random
windows, nanoGPT's `estimate_loss`) and "window_length" (0: the context). The result
file: `run`'s dictionary. A bad job is one line on stderr and exit status 2 (`--serve`:
an answer {"error": message}).

PyTorch and TensorFlow loaded in one process can crash (they did at the first AdamW,
torch 2.14 beside TensorFlow 2.21): another reason this runs in a process of its own.
"""

import dataclasses
import json
import math
import os
import pathlib
import sys

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from experiments import _windows
from tf_rnn.base.errors import ConfigError, UserError
from tf_rnn.cli import arguments
from tf_rnn.train import budget

LN2 = math.log(2.0)
BETAS = (0.9, 0.99)  # nanoGPT's shakespeare_char config: beta2 0.99, for a small batch
CLIP_NORM = 1.0
JOB_KEYS = ("train", "valid", "alphabet_size", "minutes")  # what a job must give


class CausalSelfAttention(nn.Module):
    """(B, T, C) -> (B, T, C): multi-head attention of each position to itself and the
    positions before it."""

    def __init__(self, r):
        super().__init__()
        self.n_head, self.dropout = r.n_head, r.dropout
        self.c_attn = nn.Linear(r.n_embd, 3 * r.n_embd, bias=False)
        self.c_proj = nn.Linear(r.n_embd, r.n_embd, bias=False)  # into the residual stream
        self.resid_dropout = nn.Dropout(r.dropout)

    def forward(self, x):
        B, T, C = x.size()  # batch, time, channels
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in (q, k, v))  # (B, H, T, D) each
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    """x + attn(ln_1(x)), then x + mlp(ln_2(x)): one pre-LayerNorm block."""

    def __init__(self, r):
        super().__init__()
        self.ln_1 = nn.LayerNorm(r.n_embd, bias=False)
        self.attn = CausalSelfAttention(r)
        self.ln_2 = nn.LayerNorm(r.n_embd, bias=False)
        self.mlp = nn.Sequential(nn.Linear(r.n_embd, 4 * r.n_embd, bias=False),
                                 nn.GELU(),  # exact, erf's
                                 nn.Linear(4 * r.n_embd, r.n_embd, bias=False),
                                 nn.Dropout(r.dropout))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """ids (B, T <= block_size) -> logits (B, T, A): token + position embeddings, the
    blocks, a final LayerNorm, and the head tied to the token embedding."""

    def __init__(self, alphabet_size, r):
        super().__init__()
        self.block_size = r.block_size
        self.wte = nn.Embedding(alphabet_size, r.n_embd)
        self.wpe = nn.Embedding(r.block_size, r.n_embd)
        self.drop = nn.Dropout(r.dropout)
        self.blocks = nn.ModuleList([Block(r) for _ in range(r.n_layer)])
        self.ln_f = nn.LayerNorm(r.n_embd, bias=False)
        self.lm_head = nn.Linear(r.n_embd, alphabet_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one matrix, (A, C)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, 0.02)
        # GPT-2's scaled init of the two projections that add into the residual stream.
        for block in self.blocks:
            for proj in (block.attn.c_proj, block.mlp[2]):
                nn.init.normal_(proj.weight, 0.0, 0.02 / math.sqrt(2 * r.n_layer))

    def forward(self, ids):
        T = ids.size(1)
        x = self.drop(self.wte(ids) + self.wpe(torch.arange(T, device=ids.device)))
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.lm_head(self.ln_f(x))  # (B, T, A)

    def num_parameters(self):
        """Every parameter once (the tied head is the token embedding)."""
        return sum(p.numel() for p in self.parameters())


def make_optimizer(model, r):
    """AdamW with weight decay on the parameters of 2 or more dimensions (the matrices
    and both embeddings) and none on the rest (the LayerNorms' scales)."""
    params = list(model.parameters())  # each once, the tied matrix included
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": r.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=r.learning_rate, betas=BETAS)


def make_step(model, optimizer, r):
    """step(window (B, T + 1), fraction) -> loss (nats): one AdamW update at the
    schedule's rate, the gradient clipped to a global norm of CLIP_NORM."""
    count = 0

    def step(window, fraction):
        nonlocal count
        for group in optimizer.param_groups:
            group["lr"] = _windows.warmup_cosine(count, fraction, r)
        window = torch.from_numpy(window).long()
        logits = model(window[:, :-1])  # (B, T, A)
        loss = F.cross_entropy(logits.flatten(0, 1), window[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        count += 1
        return loss.item()

    return step


@torch.no_grad()
def summed_nats(model, windows, scored, chunk=256):
    """The summed loss (nats) of windows (K, W + 1)'s targets where scored (K, W), the
    model in eval mode meanwhile (its mode restored: the server trains on after it)."""
    was_training = model.training
    model.eval()
    nats = 0.0
    for i in range(0, len(windows), chunk):
        window = torch.from_numpy(windows[i:i + chunk]).long()
        losses = F.cross_entropy(model(window[:, :-1]).transpose(1, 2), window[:, 1:],
                                 reduction="none")  # (k, W)
        nats += float(losses[torch.from_numpy(scored[i:i + chunk])].sum(dtype=torch.float64))
    model.train(was_training)
    return nats


def score_streams(model, ids, context):
    """Nats per character over the characters the recurrent contenders score, each in
    its window of `_windows.scoring_windows` (the Keras peer's `evaluate`)."""
    index, scored, n = _windows.scoring_windows(len(ids), context)
    return {"nats": summed_nats(model, ids[index], scored) / n, "chars": int(n)}


def score_windows(model, ids, count, length, seed=0):
    """Nats per character nanoGPT's way (`estimate_loss`): `count` random windows of
    `length` + 1 characters, the loss averaged over every position."""
    windows = ids[_windows.random_windows(len(ids), count, length, seed)]
    return summed_nats(model, windows, np.ones(windows[:, 1:].shape, bool)) / (count * length)


@dataclasses.dataclass
class Setup:
    """What a job trains: its recipe, model, train step, batches and validation ids."""

    recipe: _windows.Recipe
    model: GPT
    step: object  # make_step's
    windows: _windows.RandomWindows
    valid: np.ndarray
    threads: int


def prepare(job, folder):
    """The `Setup` of `job` (its .npy paths relative to `folder`); ConfigError for a
    job that gives too little or a bad recipe."""
    missing = [k for k in JOB_KEYS if k not in job]
    if missing:
        raise ConfigError(f"The job gives no {missing}.")
    r = _windows.Recipe.with_changes(job.get("settings", {}))
    threads = job.get("threads") or os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(job.get("seed", 0))
    train, valid = (np.load(folder / job[k]).astype(np.int64) for k in ("train", "valid"))
    model = GPT(job["alphabet_size"], r)
    model.train()
    step = make_step(model, make_optimizer(model, r), r)
    windows = _windows.RandomWindows(train, r.batch_size, r.block_size, job.get("seed", 0))
    return Setup(r, model, step, windows, valid, threads)


def run(job, folder, log=None):
    """Trains the recipe for the job's minutes and scores it; returns the result."""
    s = prepare(job, folder)
    r, model = s.recipe, s.model
    # The clock: the steps (the first one's warm-up included); the scoring is not counted.
    trained = _windows.train_on_budget(budget.TimeBudget(job["minutes"]), s.step, s.windows,
                                       log, job.get("name", "torch"))
    fraction = trained.pop("fraction")
    result = {**trained, "schedule_fraction": fraction,
              "final_learning_rate": _windows.warmup_cosine(trained["steps"], fraction, r),
              "chars_per_sec": trained["steps"] * r.batch_size * r.block_size /
              trained["train_seconds"],
              "parameters": model.num_parameters(), "settings": dataclasses.asdict(r),
              "torch_version": torch.__version__, "threads": s.threads}
    if job.get("streams", True):
        streams = score_streams(model, s.valid, r.block_size)
        result.update(valid_nats=streams["nats"], valid_bpc=streams["nats"] / LN2,
                      valid_chars=streams["chars"])
    if job.get("windows"):
        length = job.get("window_length") or r.block_size
        nats = score_windows(model, s.valid, job["windows"], length, job.get("seed", 0))
        result.update(nats_windows=nats, bpc_windows=nats / LN2, windows=job["windows"],
                      window_length=length)
    return result


class Session:
    """One job trained in turns (`--serve`), on a clock of its own that runs during its
    turns and validations only (`tf_rnn.train.budget.Stopwatch`): the time between them is
    another contender's. Its budget's loop is the one-shot run's (`_windows.BudgetLoop`)."""

    def __init__(self, job, folder):
        self.setup = prepare(job, folder)
        self.watch = budget.Stopwatch()
        self.budget = budget.TimeBudget(job["minutes"], timer=self.watch)
        self.loop = _windows.BudgetLoop(self.budget, self.setup.step, self.setup.windows)
        self.loop.start()  # the clock at 0, stopped until the first turn
        self.ended = False

    def turn(self, seconds):
        """Trains for `seconds` of its clock, or to its budget's end."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
                not seconds >= 0:
            raise ConfigError(f"Received an invalid value for `seconds`, expected a "
                              f"non-negative number, got {seconds!r}.")
        with self.watch.running():
            turn_end = self.watch() + seconds
            self.loop.train(stop=lambda: self.watch() >= turn_end)
        return self.state()

    def validate(self, periodic=False):
        """Its valid BPC on `_windows.scoring_windows`' characters, timed on its clock
        and kept aside by its budget for the last one; `periodic`: none (bpc None)
        where the budget's end would repeat it at once."""
        bpc = None
        with self.watch.running():
            if not (periodic and self.budget.ends_after("validation")):
                with self.budget.job("validation"):
                    s = self.setup
                    bpc = score_streams(s.model, s.valid, s.recipe.block_size)["nats"] / LN2
        return {**self.state(), "bpc": bpc}

    def state(self):
        """Its steps, its clock's seconds, the fraction of the budget its last step's
        rate followed, the mean of its last 10 losses, and whether its budget is spent
        (for good: the last validation's time kept aside may differ from the one
        before)."""
        self.ended = self.ended or self.budget.exhausted()
        loss = self.loop.last_loss
        return {"steps": self.loop.steps, "seconds": self.watch(),
                "fraction": self.loop.fraction,
                "last_loss": None if math.isnan(loss) else loss, "ended": self.ended}


def serve(lines, answer, folder=pathlib.Path()):
    """Answers each command of `lines` (JSON, one a line) with one JSON object
    (`answer(dict)`), until "quit" or the end of `lines`:

      {"command": "begin", <a job, as --job's file>}  -> `Session.state()`
      {"command": "turn", "seconds": S}               -> `Session.state()`
      {"command": "validate", "periodic": false}      -> the state and "bpc"
      {"command": "quit"}                             -> {"quit": true}

    A bad command, or a job it cannot train, is answered {"error": message}."""
    session = None
    for line in lines:
        try:
            command = json.loads(line)
            kind = command.pop("command", None) if isinstance(command, dict) else None
            if kind == "quit":
                answer({"quit": True})
                return
            if kind == "begin":
                session = Session(command, folder)
                reply = session.state()
            elif session is None or kind not in ("turn", "validate"):
                raise ConfigError(f"Expected a command of begin, turn, validate or quit "
                                  f"(begin first), got {kind!r}.")
            elif kind == "turn":
                reply = session.turn(command.get("seconds"))
            else:
                reply = session.validate(bool(command.get("periodic", False)))
        except (UserError, OSError, ValueError) as e:
            reply = {"error": str(e)}
        answer(reply)


def serve_stdio():
    """`serve` on stdin and stdout, stdout kept for the answers alone: anything else
    printed to it (a library's warning) goes to stderr."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def answer(reply):
        replies.write(json.dumps(reply) + "\n")
        replies.flush()

    serve(sys.stdin, answer)
    return 0


def main(argv=None):
    p = arguments.ArgumentParser(prog="python -m experiments._nanogpt",
                                 description=__doc__.splitlines()[0])
    p.add_argument("--job", help="the job (JSON)")
    p.add_argument("--out", type=arguments.output_path, help="where the result (JSON) goes")
    p.add_argument("--serve", action="store_true",
                   help="train a job in turns, commands on stdin, answers on stdout")
    args = p.parse_args(argv)
    if args.serve:
        return serve_stdio()
    if not (args.job and args.out):
        p.error("give --job and --out, or --serve")
    job_path = pathlib.Path(args.job)
    try:
        job = json.loads(job_path.read_text(encoding="utf-8"))
        result = run(job, job_path.parent, log=lambda line: print(line, file=sys.stderr,
                                                                  flush=True))
    except (UserError, OSError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    pathlib.Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
