"""fastmix.fastai.MixUp, the fastai v2 callback, in real fastai training
loops on the CPU: the draws bitwise fastmix's at the generator's offsets,
the mixed inputs against a float64 blend, the loss against a float64
two-term reference and against fastai's own MixUp loss given the same draw
(value and gradient w.r.t. the predictions), float targets blended, the loss
function restored after training, validation unmixed.  Needs fastai, which
tests/python/fastai.sh installs into a venv of its own; elsewhere only the
tests that need no fastai run."""
import subprocess
import sys

import numpy as np
import pytest

import fastmix

torch = pytest.importorskip("torch")
try:
    import fastai  # noqa: F401
except ImportError:
    fastai = None
needs_fastai = pytest.mark.skipif(fastai is None, reason="needs fastai (tests/python/fastai.sh)")


def test_import_fastmix_does_not_import_fastai():
    code = ("import sys, fastmix, fastmix.torch, fastmix.timm; "
            "assert 'fastai' not in sys.modules, 'fastai imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(fastai is not None, reason="fastai is installed here")
def test_without_fastai_the_module_says_so():
    with pytest.raises(ImportError, match="fastai"):
        import fastmix.fastai  # noqa: F401


if fastai is None:
    @needs_fastai
    def test_training_loops():
        """Stands for the tests below in a run without fastai (reported as skipped)."""

else:
    import torch.nn.functional as F
    from fastai.callback.core import Callback
    from fastai.callback.mixup import MixUp as FastaiMixUp
    import fastai.callback.progress  # noqa: F401  (Learner.no_bar)
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    from fastai.losses import (BCEWithLogitsLossFlat, CrossEntropyLossFlat, FocalLossFlat,
                               LabelSmoothingCrossEntropyFlat)

    import fastmix.fastai as ffa
    import fastmix.torch as ft

    class Record(Callback):
        """Records each training batch: before the mix (order below MixUp's)
        or after the loss, with the loss's value and its gradient w.r.t. the
        predictions, next to fastai's own MixUp loss given the same draw."""

        def __init__(self, order, mix=None):
            self.order, self.mix, self.seen = order, mix, []

        def before_batch(self):
            if self.mix is None and self.training:
                self.seen.append((self.learn.xb[0].clone(), self.learn.yb[0].clone()))

        def after_loss(self):
            if self.mix is None or not self.training:
                return
            mix, pred, loss = self.mix, self.learn.pred, self.learn.loss_grad
            entry = dict(x=self.learn.xb[0].detach().clone(), y=self.learn.yb[0].clone(),
                         pred=pred.detach().clone(), loss=loss.detach().clone(),
                         lam=mix.lam.clone(), par=mix.partners.clone(),
                         grad=torch.autograd.grad(loss, pred, retain_graph=True)[0],
                         fn=loss.grad_fn.name())
            if mix.labels:
                theirs = FastaiMixUp(0.4)
                theirs.learn, theirs.old_lf = self.learn, mix.old_lf
                theirs.lam, theirs.yb1 = mix.lam, (self.learn.yb[0][mix.partners],)
                ref = theirs.lf(pred, *self.learn.yb)
                entry["fastai_loss"] = ref.detach().clone()
                entry["fastai_grad"] = torch.autograd.grad(ref, pred, retain_graph=True)[0]
            self.seen.append(entry)

    def make_learner(rng, loss_func, mix, y_kind="labels", n=24, bs=8, classes=5):
        x = torch.from_numpy(rng.standard_normal((n, 3, 4, 4)).astype(np.float32))
        labels = torch.from_numpy(rng.integers(0, classes, n))
        y = F.one_hot(labels, classes).float() if y_kind == "onehot" else labels
        items = list(zip(x, y))
        dls = DataLoaders(DataLoader(items, bs=bs, shuffle=True, drop_last=True),
                          DataLoader(items, bs=bs), device="cpu")
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, classes))
        before, after = Record(-1), Record(1, mix)
        learn = Learner(dls, model, loss_func=loss_func, cbs=[mix, before, after])
        return learn, before, after, x, y

    def reference_loss(pred, y, lam, par, eps, reduction):
        """lam * CE(pred, y) + (1 - lam) * CE(pred, y[par]), float64."""
        p = pred.double()
        lam = lam.double()
        loss = (lam * F.cross_entropy(p, y, reduction="none", label_smoothing=eps)
                + (1 - lam) * F.cross_entropy(p, y[par], reduction="none", label_smoothing=eps))
        return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss

    def fit_and_check_draws(learn, before, after, seed, alpha):
        """Fits one epoch; each batch's draw and mixed input are bitwise
        ft.mixup with a host Generator at offsets 0, 1, 2, ... and close to
        a float64 blend of the unmixed batch."""
        with learn.no_bar(), learn.no_logging():
            learn.fit(1)
        assert len(before.seen) == len(after.seen) == 3
        for k, ((x, y), entry) in enumerate(zip(before.seen, after.seen)):
            g = fastmix.Generator(seed)
            g.offset = k
            want_x, want_lam, want_par = ft.mixup(x.as_subclass(torch.Tensor), alpha, generator=g)
            assert torch.equal(entry["lam"], want_lam) and torch.equal(entry["par"], want_par)
            assert torch.equal(entry["x"].as_subclass(torch.Tensor), want_x)
            lam = entry["lam"].double().view(-1, 1, 1, 1)
            ref = lam * x.double() + (1 - lam) * x.double()[entry["par"]]
            torch.testing.assert_close(entry["x"].as_subclass(torch.Tensor).double(), ref,
                                       rtol=1e-6, atol=1e-6)
            assert ((entry["lam"] >= 0.5) & (entry["lam"] <= 1)).all()      # folded
            assert sorted(entry["par"].tolist()) == list(range(len(y)))      # a permutation
            entry["unmixed_y"] = y
        assert len({tuple(e["lam"].tolist()) for e in after.seen}) == 3     # fresh draws

    @needs_fastai
    @pytest.mark.parametrize("loss_kind,eps,reduction", [
        ("flat", 0.0, "mean"), ("flat", 0.1, "sum"), ("smooth_flat", 0.1, "mean"),
        ("torch", 0.0, "mean")])
    def test_labels_take_the_fused_loss(rng, loss_kind, eps, reduction):
        if loss_kind == "flat":
            loss_func = CrossEntropyLossFlat(label_smoothing=eps, reduction=reduction)
        elif loss_kind == "smooth_flat":
            loss_func = LabelSmoothingCrossEntropyFlat(eps=eps, reduction=reduction)
        else:  # no y_int: integer targets are labels all the same (fastai's would fail)
            loss_func = torch.nn.CrossEntropyLoss()
        mix = ffa.MixUp(0.4, generator=fastmix.Generator(11))
        learn, before, after, _, _ = make_learner(rng, loss_func, mix)
        fit_and_check_draws(learn, before, after, 11, 0.4)
        assert learn.loss_func is loss_func                 # restored after training
        for entry in after.seen:
            y = entry["unmixed_y"]
            assert torch.equal(entry["y"].as_subclass(torch.Tensor), y)   # labels stay
            assert "fastmix" in entry["fn"]                 # the fused loss's backward
            want = reference_loss(entry["pred"], y, entry["lam"], entry["par"], eps, reduction)
            torch.testing.assert_close(entry["loss"].double(), want, rtol=2e-6, atol=1e-6)
            if "fastai_loss" in entry:  # fastai's own MixUp loss, given the same draw
                torch.testing.assert_close(entry["loss"], entry["fastai_loss"], rtol=1e-5,
                                           atol=1e-6)
                torch.testing.assert_close(entry["grad"], entry["fastai_grad"], rtol=1e-5,
                                           atol=1e-7)
            assert torch.isfinite(entry["grad"]).all() and entry["grad"].abs().sum() > 0
        # validation is not mixed: the plain loss of the unmixed batches
        valid = learn.validate()[0]
        with torch.no_grad():
            xs = torch.cat([b[0] for b in learn.dls.valid])
            ys = torch.cat([b[1] for b in learn.dls.valid])
            preds = learn.model(xs.as_subclass(torch.Tensor))
            per_batch = [float(loss_func(p, t)) for p, t in zip(preds.split(8), ys.split(8))]
        assert valid == pytest.approx(np.mean(per_batch), rel=1e-5)

    @needs_fastai
    def test_other_label_losses_take_two_terms(rng):
        # FocalLossFlat (y_int): the original loss, unreduced, on both label sets
        loss_func = FocalLossFlat(gamma=2.0)
        mix = ffa.MixUp(0.4, generator=fastmix.Generator(5))
        learn, before, after, _, _ = make_learner(rng, loss_func, mix)
        fit_and_check_draws(learn, before, after, 5, 0.4)
        for entry in after.seen:
            assert "fastmix" not in entry["fn"]
            torch.testing.assert_close(entry["loss"], entry["fastai_loss"], rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(entry["grad"], entry["fastai_grad"], rtol=1e-6,
                                       atol=1e-8)

    @needs_fastai
    def test_float_targets_are_blended(rng):
        # one-hot targets with a loss without y_int: blended as x (fastai's lerp)
        loss_func = BCEWithLogitsLossFlat()
        mix = ffa.MixUp(0.8, generator=fastmix.Generator(2))
        learn, before, after, _, _ = make_learner(rng, loss_func, mix, y_kind="onehot")
        fit_and_check_draws(learn, before, after, 2, 0.8)
        for entry in after.seen:
            y = entry["unmixed_y"].double()
            lam = entry["lam"].double().view(-1, 1)
            want_y = lam * y + (1 - lam) * y[entry["par"]]
            got_y = entry["y"].as_subclass(torch.Tensor)
            torch.testing.assert_close(got_y.double(), want_y, rtol=1e-6, atol=1e-7)
            want = F.binary_cross_entropy_with_logits(entry["pred"].double(), want_y)
            torch.testing.assert_close(entry["loss"].double(), want, rtol=1e-5, atol=1e-6)

    @needs_fastai
    def test_arguments():
        assert ffa.MixUp().alpha == pytest.approx(0.4)      # fastai's default
        assert ffa.MixUp.run_valid is False
        with pytest.raises(fastmix.InvalidValueError, match="alpha"):
            ffa.MixUp(-1.0)
        with pytest.raises(TypeError, match="generator"):
            ffa.MixUp(0.4, generator=np.random.default_rng(0))
