"""captum_cf.training: batch streams, device and precision checks, per-rank seeds, resume guards."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from captum_cf.training import (
    DistributedContext,
    IndexStream,
    Trainer,
    TrainingInterrupted,
    check_amp,
    cycle_batches,
    rank_seed,
    resolve_device,
)


@pytest.mark.parametrize(("n", "bs"), [(10, 3), (9, 3), (2, 5), (7, 7)])
def test_single_process_stream_is_cycle_batches(n: int, bs: int) -> None:
    stream = IndexStream(n, bs, torch.Generator().manual_seed(4))
    reference = cycle_batches(n, bs, torch.Generator().manual_seed(4))
    for _ in range(12):
        assert torch.equal(next(stream), next(reference))
    assert stream.batches_per_epoch == (n // bs if n >= bs else 1)


def test_stream_resumes_exactly_mid_epoch() -> None:
    gen = torch.Generator().manual_seed(1)
    stream = IndexStream(11, 4, gen)
    for _ in range(3):  # one epoch (2 batches) and one batch of the next
        next(stream)
    state, gen_state = stream.state_dict(), gen.get_state()
    expected = [next(stream) for _ in range(5)]
    gen2 = torch.Generator().manual_seed(99)
    again = IndexStream(11, 4, gen2)
    again.load_state_dict(state)
    gen2.set_state(gen_state)
    assert all(torch.equal(a, b) for a, b in zip(expected, [next(again) for _ in range(5)]))


def test_distributed_streams_shard_each_epoch_like_distributed_sampler() -> None:
    n, world = 10, 2
    streams = [IndexStream(n, 5, torch.Generator(), seed=3,
                           context=DistributedContext(rank=r, world_size=world))
               for r in range(world)]
    for _ in range(2):  # two epochs: disjoint shards covering range(n), a new order per epoch
        shards = [next(s) for s in streams]
        assert sorted(torch.cat(shards).tolist()) == list(range(n))
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=2, rank=1, seed=3)
    sampler.set_epoch(1)
    assert shards[1].tolist() == list(sampler)


def test_rank_seeds_differ_and_rank_zero_keeps_the_seed() -> None:
    assert rank_seed(7, DistributedContext()) == 7
    seeds = {rank_seed(7, DistributedContext(rank=r, world_size=4)) for r in range(4)}
    assert len(seeds) == 4 and 7 in seeds


def test_amp_and_device_errors_name_the_argument() -> None:
    assert check_amp(None, torch.device("cpu")) is None
    with pytest.raises(ValueError, match=r"amp='bf16' \(--amp bf16\) needs a CUDA device"):
        check_amp("bf16", torch.device("cpu"))
    with pytest.raises(ValueError, match="amp must be None or 'bf16'"):
        check_amp("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        resolve_device("tpu")
    assert resolve_device(None) == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


class _Counter(Trainer):
    """Fits y = 2x with SGD; draws its batch from self.rng."""

    def __init__(self, **kw) -> None:
        torch.manual_seed(0)
        self.net = nn.Linear(1, 1)
        super().__init__({"net": self.net},
                         {"net": torch.optim.SGD(self.net.parameters(), lr=0.1)}, **kw)

    def train_step(self) -> dict[str, float]:
        x = torch.rand(8, 1, generator=self.rng).to(self.device)  # drawn on the CPU, as trainers do
        loss = ((self.net(x) - 2 * x) ** 2).mean()
        self.optimizers["net"].zero_grad()
        loss.backward()
        self.reduce_gradients("net")
        self.optimizers["net"].step()
        return {"loss": loss.item()}


def test_checkpoint_cadence_exact_resume_and_world_size_guard(tmp_path, device) -> None:
    straight = _Counter(seed=2, log_every=1, device=device)
    straight.fit(7)
    assert straight.net.weight.device.type == device.type
    saved: list[int] = []
    first = _Counter(seed=2, log_every=1, checkpoint_path=tmp_path / "c.pt", checkpoint_every=3,
                     device=device)
    real_save = first.save
    first.save = lambda path: (saved.append(first.step), real_save(path))  # type: ignore
    first.fit(4)
    assert saved == [3, 4]  # every 3 steps and at the end
    resumed = _Counter(seed=2, log_every=1, checkpoint_path=tmp_path / "c.pt", device=device)
    assert resumed.resume_if_exists() and resumed.step == 4
    resumed.fit(7)
    assert resumed.history == straight.history
    assert torch.equal(resumed.net.weight, straight.net.weight)
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    state["trainer"]["world_size"] = 2
    torch.save(state, tmp_path / "c2.pt")
    with pytest.raises(ValueError, match="written by 2 process"):
        _Counter().resume(tmp_path / "c2.pt")


def test_amp_on_cpu_is_refused_before_training() -> None:
    with pytest.raises(ValueError, match="needs a CUDA device"):
        _Counter(amp="bf16")


def test_average_gradients_divides_the_all_reduced_sum_tensor_by_tensor(tmp_path) -> None:
    # a real gloo group of one process: the all-reduced sum is each gradient itself, so a
    # context claiming 4 processes must return every gradient divided by 4, in its own place
    import torch.distributed as dist

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1, bias=False))
        net(torch.rand(5, 3)).sum().backward()
        net[0].bias.grad = None  # a parameter without a gradient is skipped
        before = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
        DistributedContext(rank=0, world_size=4).average_gradients([net])
        for p, g in zip(net.parameters(), before):
            assert (p.grad is None) if g is None else torch.equal(p.grad, g / 4)
    finally:
        dist.destroy_process_group()


def test_check_frozen_classifier_names_the_model_the_shape_and_the_fix(device) -> None:
    from captum_cf.training import check_frozen_classifier

    model = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4), nn.Linear(4, 2)).to(device).train()
    model[2].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.rand(3, 1, 2, 2, device=device)
    check_frozen_classifier(model, images, "classifier", 2)  # fits: no error
    check_frozen_classifier(None, images, "aux_classifier", 2)  # nothing to check
    with pytest.raises(ValueError, match=r"^aux 'a.pt' fails on the training images of shape "
                       r"\(1, 1, 3, 3\) \(RuntimeError: .*\); train it at 3 px$"):
        check_frozen_classifier(model, torch.rand(2, 1, 3, 3, device=device), "aux 'a.pt'",
                                hint="train it at 3 px")
    with pytest.raises(ValueError, match=r"classifier must return \(1, 5\) logits .* \(1, 2\)"):
        check_frozen_classifier(model, images, "classifier", 5)
    with pytest.raises(ValueError, match=r"classifier must return \(N, classes\) logits"):
        check_frozen_classifier(nn.Flatten(0), images, "classifier")
    # one image in eval mode: batch-norm statistics, mode and flags as before, also after errors
    assert model.training and not model[2].weight.requires_grad and model[2].bias.requires_grad
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


class _Interrupted(_Counter):
    """Presses Ctrl-C (SIGINT to this process) ``times`` times in the middle of the steps named
    in ``press``."""

    def __init__(self, press: tuple[int, ...] = (), times: int = 1, **kw) -> None:
        super().__init__(**kw)
        self.press, self.times = press, times

    def train_step(self) -> dict[str, float]:
        import os
        import signal

        losses = super().train_step()
        if self.step + 1 in self.press:  # self.step counts the steps finished before this one
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)  # handled before the next bytecode
        return losses


def test_ctrl_c_finishes_the_step_writes_a_checkpoint_and_resumes_exactly(tmp_path) -> None:
    import signal

    straight = _Counter(seed=2, log_every=1)
    straight.fit(9)
    ckpt = tmp_path / "c.pt"
    first = _Interrupted(press=(4,), seed=2, log_every=1, checkpoint_path=ckpt,
                         checkpoint_every=100)
    with pytest.raises(TrainingInterrupted) as info:
        first.fit(9)
    assert isinstance(info.value, KeyboardInterrupt)  # code catching Ctrl-C still does
    assert (info.value.step, info.value.steps, info.value.checkpoint) == (4, 9, str(ckpt))
    assert "interrupted by SIGINT after step 4 of 9; checkpoint written to" in str(info.value)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler given back
    resumed = _Interrupted(seed=2, log_every=1, checkpoint_path=ckpt)  # no press this time
    assert resumed.resume_if_exists() and resumed.step == 4
    resumed.fit(9)
    assert resumed.history == straight.history
    assert torch.equal(resumed.net.weight, straight.net.weight)
    # without a checkpoint file: it stops after the step all the same, saying nothing was saved
    bare = _Interrupted(press=(2,), seed=2)
    with pytest.raises(TrainingInterrupted, match="nothing was saved") as info:
        bare.fit(9)
    assert bare.step == 2 and info.value.checkpoint is None
    # a second Ctrl-C stops at once, inside the step: no checkpoint of a half-done step
    twice = _Interrupted(press=(3,), times=2, seed=2, checkpoint_path=tmp_path / "d.pt",
                         checkpoint_every=100)
    with pytest.raises(KeyboardInterrupt) as info:
        twice.fit(9)
    assert not isinstance(info.value, TrainingInterrupted) and twice.step == 2
    assert not (tmp_path / "d.pt").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_stops_after_the_step_like_ctrl_c(tmp_path) -> None:
    """A scheduler's SIGTERM (preemption) ends the run as Ctrl-C does: the step finishes, the
    checkpoint is written, and the resumed run is the uninterrupted one."""
    import signal

    class _Terminated(_Interrupted):
        def train_step(self) -> dict[str, float]:
            import os

            losses = _Counter.train_step(self)
            if self.step + 1 == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return losses

    straight = _Counter(seed=5)
    straight.fit(6)
    cut = _Terminated(seed=5, checkpoint_path=tmp_path / "t.pt", checkpoint_every=100)
    with pytest.raises(TrainingInterrupted, match="interrupted by SIGTERM after step 3 of 6"):
        cut.fit(6)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the default again
    resumed = _Terminated(seed=5, checkpoint_path=tmp_path / "t.pt")
    assert resumed.resume_if_exists() and resumed.step == 3
    resumed.fit(6)  # step 3 is done: no signal this time
    assert torch.equal(resumed.net.weight, straight.net.weight)


def test_a_diverged_loss_is_shown_and_warned_once(device) -> None:
    # the log dropped nan values: a diverged run printed clean-looking "step 20" lines
    class _Diverging(_Counter):
        def train_step(self) -> dict[str, float]:
            losses = _Counter.train_step(self)
            return {**losses, "loss": float("nan")} if self.step >= 2 else losses

    lines: list[str] = []
    trainer = _Diverging(seed=0, log_every=1, device=device, log=lines.append)
    with pytest.warns(RuntimeWarning, match="training diverged: loss loss is nan at step 3") as w:
        trainer.fit(5)
    assert sum("training diverged" in str(x.message) for x in w) == 1
    assert lines[-1] == "step 5 | loss nan" and lines[0].startswith("step 1 | loss 0.")


def test_a_checkpoint_given_as_weights_is_named_a_checkpoint(tmp_path) -> None:
    # "lacks the keys ['name', 'arch', ...]" did not say which file to pass instead
    from captum_cf import zoo
    from captum_cf._weights import WeightsFileError

    _Counter(seed=0, checkpoint_path=tmp_path / "c.ckpt", checkpoint_every=1).fit(1)
    with pytest.raises(WeightsFileError, match=r"c.ckpt is a training checkpoint \(_Counter's\), "
                                               r"not the weights it trains: pass the file"):
        zoo.load_file(tmp_path / "c.ckpt")


def test_override_flags_are_recorded_one_option_each_and_shown_plainly() -> None:
    # a changed --lambda-cls was shown as "--train-config GANMEXTrainConfig(...)" reprs
    from captum_cf.training import loop

    @loop.records_run_options
    def train(data, seed=0, train_overrides=None, lambda_x=None):
        return loop._RUN_OPTIONS.get()

    options = train("digits", train_overrides={"lambda_cls": 2.0})
    assert options["lambda_cls"] == "2.0" and "train_overrides" not in options
    # the command records every flag, None when not given
    old = {"format": 1, "seed": 0, "options": train("digits", train_overrides={"lambda_cls": None})}
    with pytest.raises(ValueError, match=r"--lambda-cls not given \(its default\) \(this run: "
                                         r"2.0\)"):
        loop._check_same_run(old, 0, options)
    # an option one version records and another does not (an older checkpoint): not compared
    loop._check_same_run({"format": 1, "seed": 0, "options": {"data": "'digits'"}}, 0, options)
    with pytest.raises(ValueError, match=r"--lambda-x not given \(its default\) \(this run: 3\)"):
        loop._check_same_run(old, 0, train("digits", lambda_x=3))
