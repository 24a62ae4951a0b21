"""Training engines: DeepSpeed ZeRO-3 (one process over gloo on CPU) steps like plain PyTorch AdamW."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def gloo():
    """One single-rank gloo group for the module (DeepSpeed caches the first group it sees)."""
    import torch.distributed as dist

    from ovr.serving import free_port

    with pytest.MonkeyPatch.context() as mp:
        for k, v in {
            "RANK": "0",
            "WORLD_SIZE": "1",
            "LOCAL_RANK": "0",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port()),
        }.items():
            mp.setenv(k, v)
        dist.init_process_group("gloo")
        yield
        dist.destroy_process_group()


def _loss(model, ids):
    return model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss


def test_warmup_constant_schedule():
    from ovr.rl.engine import warmup_constant

    f = warmup_constant(4)
    assert [f(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_constant(0)(0) == 1.0


def test_zero3_step_matches_torch_adamw(gloo, tiny_model_dir, tmp_path):
    from transformers import AutoModelForImageTextToText

    from ovr.config import RLConfig
    from ovr.rl.engine import DeepSpeedEngine, TorchEngine, make_engine

    rl = RLConfig(zero_stage=3, warmup_steps=0, adam_betas=(0.9, 0.95))
    ids = torch.randint(0, 600, (2, 12), generator=torch.Generator().manual_seed(0))
    plain = TorchEngine(
        AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir)),
        lr=1e-3,
        betas=(0.9, 0.95),
        weight_decay=0.0,
        warmup_steps=0,
        grad_clip=1.0,
    )
    plain.backward(_loss(plain.module, ids))
    plain.step()
    zero = make_engine(AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir)), lr=1e-3, rl=rl, device="cpu")
    assert isinstance(zero, DeepSpeedEngine) and zero.lr == pytest.approx(1e-3)
    zero.backward(_loss(zero.module, ids))
    zero.step()
    full = zero.weights(zero.module).state_dict()  # gathered from the ZeRO-3 partitions
    ref = plain.weights(plain.module).state_dict()
    k = "model.language_model.layers.0.mlp.down_proj.weight"
    assert full[k].shape == ref[k].shape
    assert torch.allclose(full[k], ref[k], atol=1e-5)
    zero.save_optim(tmp_path / "ds")
    zero.load_optim(tmp_path / "ds")
    assert (tmp_path / "ds" / "latest").is_file()


def test_both_engines_warm_up_alike(gloo, tiny_model_dir):
    """One warm-up definition: plain AdamW and DeepSpeed ZeRO-3 give the same learning rate at every
    update (the first one at lr/warmup, not 0) and therefore the same weights."""
    from transformers import AutoModelForImageTextToText

    from ovr.config import RLConfig
    from ovr.rl.engine import TorchEngine, make_engine

    rl = RLConfig(zero_stage=3, warmup_steps=3)
    ids = torch.randint(0, 600, (2, 12), generator=torch.Generator().manual_seed(1))
    plain = TorchEngine(
        AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir)),
        lr=1e-3,
        betas=rl.adam_betas,
        weight_decay=0.0,
        warmup_steps=3,
        grad_clip=1.0,
    )
    zero = make_engine(AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir)), lr=1e-3, rl=rl, device="cpu")
    lrs = []
    for _ in range(4):
        lrs.append((plain.lr, zero.lr))
        for engine in (plain, zero):
            engine.backward(_loss(engine.module, ids))
            engine.step()
    assert [p for p, _ in lrs] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3])
    assert [z for _, z in lrs] == pytest.approx([p for p, _ in lrs])
    k = "model.language_model.layers.0.mlp.down_proj.weight"
    assert torch.allclose(
        zero.weights(zero.module).state_dict()[k], plain.weights(plain.module).state_dict()[k], atol=1e-5
    )


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_accumulates_micro_batches_like_torch(gloo, tiny_model_dir, stage):
    """Three backward passes, then one step: ZeRO-2/3 must sum the micro-batches' gradients (ZeRO-3
    counts micro-steps in DeepSpeed's forward, which the trainer bypasses; the engine advances it)."""
    from transformers import AutoModelForImageTextToText

    from ovr.config import RLConfig
    from ovr.rl.engine import TorchEngine, make_engine

    ids = [torch.randint(0, 600, (2, 12), generator=torch.Generator().manual_seed(s)) for s in range(3)]
    plain = TorchEngine(
        AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir)),
        lr=1e-3,
        betas=(0.9, 0.95),
        weight_decay=0.0,
        warmup_steps=0,
        grad_clip=1.0,
    )
    zero = make_engine(
        AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir)),
        lr=1e-3,
        rl=RLConfig(zero_stage=stage, warmup_steps=0),
        device="cpu",
    )
    norms = []
    for engine in (plain, zero):
        for i, x in enumerate(ids):
            engine.backward(_loss(engine.module, x) / 3, last=i == 2)
        norms.append(engine.step())
    assert norms[1] == pytest.approx(norms[0], rel=1e-4)
    k = "model.language_model.layers.0.mlp.down_proj.weight"
    got, want = zero.weights(zero.module).state_dict()[k], plain.weights(plain.module).state_dict()[k]
    assert torch.allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_resume_restores_weights_into_an_unloaded_model(gloo, tiny_model_dir, tmp_path, stage):
    """A DeepSpeed resume builds actor and critic from their configs alone (allocated, never read
    from the gathered weights) and ZeRO restores every weight exactly from its own checkpoint files:
    what lets a resumed rank skip the full weights (download and host memory)."""
    from transformers import AutoModelForImageTextToText

    from ovr.config import RLConfig
    from ovr.models.critic import Critic
    from ovr.rl.engine import make_engine
    from ovr.rl.setup import _policy, engine_restores_weights

    rl = RLConfig(zero_stage=stage, warmup_steps=0)
    assert engine_restores_weights(rl)
    ids = torch.randint(0, 600, (2, 12), generator=torch.Generator().manual_seed(0))
    critic = Critic.from_policy(tiny_model_dir, init_range=5**0.5, seed=3)
    critic.save(tmp_path / "critic")  # its config and head shape: what a resume reads besides the partitions
    head = critic.value_head.weight.detach().clone()
    trained = {}
    for name, model in (
        ("actor", AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir))),
        ("critic", critic),
    ):
        engine = make_engine(model, lr=1e-2, rl=rl, device="cpu")
        out = engine.module(input_ids=ids, attention_mask=torch.ones_like(ids))
        engine.backward((out.logits if name == "actor" else out).float().pow(2).mean())
        engine.step()
        trained[name] = engine.weights(engine.module).state_dict()
        engine.save_optim(tmp_path / f"{name}_optim")
    skeletons = {
        "actor": _policy(tiny_model_dir, "cpu", weights=False, dtype=torch.float32),
        "critic": Critic.load(tmp_path / "critic", torch.float32, weights=False),
    }
    for name, model in skeletons.items():
        engine = make_engine(model, lr=1e-2, rl=rl, device="cpu")
        engine.load_optim(tmp_path / f"{name}_optim")
        got = engine.weights(engine.module).state_dict()
        assert got.keys() == trained[name].keys()
        assert all(torch.equal(got[k], trained[name][k]) for k in got), name
    assert not torch.equal(trained["critic"]["value_head.weight"], head)  # the restored head is the trained one


class _Seeing(torch.nn.Module):
    """A policy's shape in miniature: a vision part (``visual``) feeding a language part."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.visual = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
        self.language_model = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.language_model(self.visual(x))


def test_the_vision_tower_gets_its_own_rate_on_the_real_policy(tiny_model_dir):
    """``rl.vision_lr`` groups exactly the tower and merger of Qwen2.5-VL (``model.visual``)."""
    from transformers import AutoModelForImageTextToText

    from ovr.rl.engine import param_groups

    model = AutoModelForImageTextToText.from_pretrained(str(tiny_model_dir))
    names = {id(p): n for n, p in model.named_parameters()}
    text, vision = param_groups(model, 1e-4, 1e-3)
    assert (text["lr"], vision["lr"]) == (1e-4, 1e-3)
    assert {names[id(p)] for p in vision["params"]} == {n for n in names.values() if n.startswith("model.visual.")}
    assert any(names[id(p)].startswith("model.visual.merger.") for p in vision["params"])  # the projector too
    assert len(text["params"]) + len(vision["params"]) == len(names)
    assert len(param_groups(model, 1e-4)) == 1  # unset: one group at actor_lr
    (only,) = param_groups(model, 1e-4, 0.0)  # 0: frozen, out of the optimiser
    assert len(only["params"]) == len(text["params"])
    assert not any(p.requires_grad for p in model.model.visual.parameters())


@pytest.mark.parametrize("stage", [0, 2, 3])
@pytest.mark.parametrize("vision_lr", [1e-2, 0.0])
def test_each_engine_steps_the_vision_tower_at_its_rate(gloo, stage, vision_lr):
    """Adam's first step moves every weight by ~its group's rate: the tower by ``vision_lr`` (not at
    all at 0), the language part by ``actor_lr``, in the plain engine and under ZeRO-2/3."""
    from ovr.config import RLConfig
    from ovr.rl.engine import make_engine

    model = _Seeing()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    engine = make_engine(
        model, lr=1e-4, rl=RLConfig(zero_stage=stage, warmup_steps=0, grad_clip=1e9), device="cpu", vision_lr=vision_lr
    )
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    engine.backward(engine.module(x).pow(2).mean())
    engine.step()
    assert engine.lrs == ([1e-4, vision_lr] if vision_lr else [1e-4])
    after = engine.weights(engine.module).state_dict() if stage == 3 else dict(engine.module.named_parameters())
    moved = {n: (after[n].detach() - before[n]).abs().max().item() for n in before}
    for n, d in moved.items():
        want = vision_lr if n.startswith("visual.") else 1e-4
        assert d == pytest.approx(want, rel=0.05, abs=1e-9), (n, d)
