"""Train a classifier on long-tailed data, with and without GIT.

Reads top to bottom like a user's own training loop: data, model, optimizer,
loop, evaluation. GIT is two lines in that loop: a ``GITAugment`` loaded with
``from_pretrained`` and a ``ClassThresholdSampler``, switched on when
class-balanced re-sampling starts (the paper's delayed GIT).

Methods (``--method``):

* ``erm``     plain cross-entropy with instance sampling;
* ``drs``     deferred re-sampling: instance sampling, then class-balanced
              sampling from ``--drs-epoch`` on (with a learning-rate step);
* ``git``     ``drs`` + GIT: tail-class samples re-drawn by the generator
              (``--generator``) once re-sampling starts, drawn live for every
              replaced sample, or served from a bank of ``--bank-draws V``
              draws per tail image made when GIT starts (faster, but only V
              pictures of each tail image);
* ``oracle``  ``drs`` + a fresh draw of the *true* nuisance, on the base digit,
              for the same samples GIT would replace (an upper reference;
              only for the built-in sets).

``--loss ldam|bal-bce|logit-adjusted`` and ``--head cosine|etf|haframe`` swap in the
long-tail losses and fixed heads of :mod:`gitaug.losses` and
:mod:`gitaug.heads`; ``--resampling none`` keeps instance sampling, as
LDAM+DRW does (GIT still starts at ``--drs-epoch``). LDAM gets a cosine head unless
``--head`` names another, as its reference does. ``--keep-class FILE`` undoes
every GIT draw that a saved classifier (``--save-classifier`` of a run without
GIT) predicts as another class than the draw's input; on dilated clothing it won
back the confusable classes but cost the tail its invariance
(``benchmarks/keep_class.py``).

Examples::

    gitaug-fit --dataset digits-bg-lt --out runs/digits-bg-lt
    python examples/train_longtail.py --dataset digits-bg-lt --method drs --out runs/drs.json
    python examples/train_longtail.py --dataset digits-bg-lt --method git \\
        --generator runs/digits-bg-lt --threshold 100 --p 0.5 --out runs/git.json

    # LDAM+DRW with GIT (instance sampling, re-weighting and GIT from --drs-epoch)
    python examples/train_longtail.py --dataset digits-bg-lt --method git --generator runs/digits-bg-lt \
        --loss ldam --resampling none

    # CIFAR-10-LT from the python pickle batches you already have
    python examples/train_longtail.py --cifar path/to/cifar-10-batches-py --imbalance 100 --method drs

Outputs a JSON with balanced test (and validation) accuracy, per-class
accuracy, and the eKLD summary under the true nuisance (built-in sets).
``--save-classifier FILE.safetensors`` also keeps the trained classifier, for
``gitaug eval --generator G --data D --classifier FILE.safetensors`` (its eKLD
under a generator's draws).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from gitaug import ClassThresholdSampler, GITAugment
from gitaug import datasets as gdata
from gitaug.bank import TailBank
from gitaug.evaluation.invariance import ekld, summarize_ekld
from gitaug.longtail.classifiers import ScaledLogits, SmallResNet, load_classifier, save_classifier
from gitaug.longtail.resampling import DeferredResampler

METHODS = ("erm", "drs", "git", "oracle")
LOSSES = ("ce", "ldam", "bal-bce", "logit-adjusted")
HEADS = ("auto", "linear", "cosine", "etf", "haframe")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits-rot-lt", help="a built-in dataset (see gitaug.datasets.available())")
    data.add_argument("--cifar", type=Path, default=None, help="folder of CIFAR-10/100 python pickle batches; overrides --dataset")
    data.add_argument("--imbalance", type=float, default=100.0, help="CIFAR-LT imbalance ratio rho")
    method = parser.add_argument_group("method")
    method.add_argument("--method", choices=METHODS, default="drs")
    method.add_argument("--generator", default=None, help="GIT generator: a gitaug-fit output folder or a Hub repo id")
    method.add_argument("--threshold", type=float, default=None, help="class-size threshold K (default: no threshold)")
    method.add_argument("--p", type=float, default=0.5, help="proportion of eligible samples replaced")
    method.add_argument("--rule", choices=("hard", "linear"), default="hard")
    method.add_argument("--draw", choices=("decode", "residual", "recommended"), default="decode",
                        help="GIT's draws: the generator's picture (decode), the input plus the change the generator "
                             "makes (residual: GITAugment(residual=True)), or what the generator's folder recommends "
                             "(recommended: its training.draw, which gitaug fit stores; --styles and "
                             "--appearance-scale are then ignored)")
    method.add_argument("--styles", choices=("prior", "data"), default="prior",
                        help="GIT's style codes: the N(0, I) prior (the paper's) or the training images' own style "
                             "distribution (GITAugment(styles='data'))")
    method.add_argument("--appearance-scale", type=float, default=1.0, metavar="S",
                        help="with --draw residual, how much of the decoder's appearance change a draw applies "
                             "(GITAugment(appearance_scale=S); 0: the generator's warp alone)")
    method.add_argument("--warp-extent", type=float, default=None, metavar="E",
                        help="multiply the generator's warp ranges by E in every draw (GITAugment(warp_extent=E)); "
                             "default: the draw's own (a recommended draw's stored extent, else 1); applies to "
                             "--draw recommended too")
    method.add_argument("--bank-draws", type=int, default=0, metavar="V",
                        help="GIT serves each replaced sample from a gitaug.bank.TailBank of V draws per tail "
                        "image, drawn when GIT starts (faster; 0, the default as in GITDataset: live draws, "
                        "a generator pass per replaced sample, so no draw repeats)")
    method.add_argument("--live-draws", action="store_true",
                        help="run the generator on every replaced sample (the default; overrides --bank-draws)")
    method.add_argument("--keep-class", type=Path, default=None, metavar="FILE",
                        help="a classifier saved by --save-classifier (e.g. one trained without GIT): a GIT draw it "
                             "predicts as another class than the draw's input is replaced by that input")
    method.add_argument("--resampling", choices=("auto", "none", "deferred"), default="auto",
                        help="auto: instance sampling for erm, deferred re-sampling otherwise; "
                        "none suits losses that re-weight instead (LDAM+DRW, Bal-BCE)")
    method.add_argument("--loss", choices=LOSSES, default="ce",
                        help="ldam uses the DRW re-weighting from --drs-epoch on")
    method.add_argument("--head", choices=HEADS, default="auto",
                        help="auto: cosine for --loss ldam (its margins and scale assume cosine logits), linear "
                        "otherwise; etf: fixed simplex ETF; haframe: fixed hierarchy-aware frame (CIFAR-100) "
                        "with its cosine loss mixed in")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--drs-epoch", type=int, default=None, help="epoch where re-sampling (and GIT) starts; default 2/3 of --epochs")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=0.05)
    train.add_argument("--weight-decay", type=float, default=5e-4)
    train.add_argument("--width", type=int, default=16, help="channels of the first ResNet stage")
    train.add_argument("--seed", type=int, default=0, help="seeds the data (class order, draws) and the training")
    train.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--ekld-inputs", type=int, default=40, help="inputs per class for eKLD")
    evaluation.add_argument("--ekld-draws", type=int, default=50, help="nuisance draws per input for eKLD")
    evaluation.add_argument("--out", type=Path, default=None, help="write the results here as JSON")
    evaluation.add_argument("--save-classifier", type=Path, default=None, metavar="FILE",
                            help="write the trained classifier to this .safetensors file (weights, architecture, "
                            "logit scale, class names and training counts), e.g. for "
                            "'gitaug eval --generator G --data D --classifier FILE'")
    args = parser.parse_args(argv)
    if args.method == "git" and args.generator is None:
        parser.error("--method git needs --generator (a gitaug-fit folder or a Hub repo id)")
    if args.method == "oracle" and args.cifar is not None:
        parser.error("--method oracle needs a built-in dataset: the true nuisance of CIFAR is unknown")
    if args.head == "auto":
        args.head = "cosine" if args.loss == "ldam" else "linear"
    if args.bank_draws < 0:
        parser.error(f"--bank-draws must be a positive number of draws, or 0 for live draws, got {args.bank_draws}")
    if args.keep_class is not None and (args.method != "git" or args.bank_draws):
        parser.error(f"--keep-class applies to live GIT draws (--method git without --bank-draws), got --method "
                     f"{args.method}" + (f" --bank-draws {args.bank_draws}" if args.bank_draws else ""))
    if args.live_draws:
        args.bank_draws = 0
    if args.drs_epoch is None:
        args.drs_epoch = (2 * args.epochs) // 3
    if args.save_classifier is not None and args.save_classifier.suffix != ".safetensors":
        parser.error(f"--save-classifier must name a .safetensors file, got {str(args.save_classifier)!r}")
    if not 0 <= args.drs_epoch <= args.epochs:
        parser.error(f"--drs-epoch must be in [0, --epochs={args.epochs}], got {args.drs_epoch}")
    return args


# ----------------------------------------------------------------------------- helpers


class OracleAugment:
    """What GIT would do with a perfect generator: a fresh draw of the *true* nuisance for the selected samples.

    The draw is made on each sample's untransformed base digit (the plain
    dataset has the same images in the same order), not on the already
    transformed image: a background or a dilation applied twice is not a
    draw from the dataset's nuisance (a second background finds no black
    pixel left to fill).
    """

    def __init__(self, nuisance, sampler: ClassThresholdSampler, base_images: torch.Tensor) -> None:
        self.nuisance, self.sampler, self.enabled = nuisance, sampler, False
        self.base_images = base_images  # float in [0, 1], indexed like the training set

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, generator: torch.Generator | None = None):
        if not self.enabled:
            return images, labels
        mask = self.sampler(labels, generator=generator)
        if not mask.any():
            return images, labels
        out = images.clone()
        out[mask] = self.nuisance(self.base_images[indices[mask]], generator=generator)
        return out, labels


class KeepClass:
    """GIT whose draws keep their class: a draw that ``reference`` predicts as another class than its input is undone.

    A generator that changes what an image shows, not only its nuisance,
    hands the classifier a picture of another class under this one's label.
    A reference classifier trained on the same data catches the draws that
    cross a class boundary it knows; each such sample keeps its input.
    Counts of drawn and undone samples per class are kept (``drawn``, ``undone``).
    """

    def __init__(self, augment, reference: nn.Module, num_classes: int) -> None:
        self.augment, self.reference = augment, reference.eval()
        self.drawn = torch.zeros(num_classes, dtype=torch.long)
        self.undone = torch.zeros(num_classes, dtype=torch.long)

    @property
    def enabled(self) -> bool:
        return self.augment.enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.augment.enabled = value

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        out, labels = self.augment(images, labels, generator=generator)
        drawn = (out != images).flatten(1).any(1).nonzero().flatten()
        if drawn.numel() == 0:
            return out, labels
        device = next(self.reference.parameters()).device
        # One reference pass over inputs and draws together (eval mode: each image is scored on its own).
        before, after = self.reference(torch.cat([images[drawn], out[drawn]]).to(device)).argmax(1).cpu().chunk(2)
        undone = drawn[before != after]
        out = out.clone()
        out[undone] = images[undone]
        self.drawn += torch.bincount(labels[drawn].cpu(), minlength=len(self.drawn))
        self.undone += torch.bincount(labels[undone].cpu(), minlength=len(self.undone))
        return out, labels


class WithIndex(torch.utils.data.Dataset):
    """A dataset's items with their index appended: ``(image, label, index)``."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*self.dataset[index], index)


@torch.no_grad()
def predict(model: nn.Module, dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels of a whole dataset."""
    model.eval()
    outputs = [(model(images.to(device)).cpu(), labels) for images, labels in DataLoader(dataset, batch_size=512)]
    return torch.cat([o for o, _ in outputs]), torch.cat([l for _, l in outputs])


def per_class_accuracy(model: nn.Module, dataset, device: torch.device, num_classes: int) -> torch.Tensor:
    logits, labels = predict(model, dataset, device)
    correct = torch.bincount(labels[logits.argmax(1) == labels], minlength=num_classes).float()
    return correct / torch.bincount(labels, minlength=num_classes).float().clamp(min=1)


def load_data(args: argparse.Namespace):
    """Train / val / test splits, plus (built-in sets only) the plain test split and the true nuisance for eKLD."""
    if args.cifar is not None:
        train = gdata.load_cifar_lt(args.cifar, split="train", imbalance=args.imbalance, seed=args.seed)
        test = gdata.load_cifar_lt(args.cifar, split="test", imbalance=args.imbalance, seed=args.seed)
        return train, None, test, None, None
    train = gdata.load(args.dataset, split="train", seed=args.seed)
    val = gdata.load(args.dataset, split="val", seed=args.seed)
    test = gdata.load(args.dataset, split="test", seed=args.seed)
    nuisance = gdata.nuisance_of(args.dataset)
    # eKLD is measured on untransformed test digits against fresh draws of the true nuisance:
    # the plain image is itself one draw (angle 0, background 0, erosion by 1), so it is in distribution.
    plain_test = gdata.load(gdata.plain_version(args.dataset), split="test", seed=args.seed, draws=1)
    return train, val, test, plain_test, nuisance


def make_loss(args: argparse.Namespace, class_counts: torch.Tensor):
    if args.loss == "ce":
        return nn.CrossEntropyLoss(), None
    from gitaug.longtail import losses

    if args.loss == "logit-adjusted":
        return losses.LogitAdjustedLoss(class_counts), None
    if args.loss == "bal-bce":
        return losses.BalancedBCELoss(class_counts), None
    # LDAM with the deferred re-weighting (DRW) schedule, as the GIT paper's LDAM+DRW baseline.
    return losses.LDAMLoss(class_counts), losses.DRWSchedule(class_counts, start_epoch=args.drs_epoch)


def make_head(args: argparse.Namespace, feature_dim: int, num_classes: int) -> nn.Module | None:
    if args.head == "linear":
        return None
    from gitaug.longtail import heads, hierarchy

    if args.head == "cosine":
        return heads.CosineHead(feature_dim, num_classes)
    if args.head == "etf":
        return heads.ETFHead(feature_dim, num_classes, seed=args.seed)
    if args.cifar is None or num_classes != 100:
        raise SystemExit("--head haframe needs a class hierarchy: use it with CIFAR-100 (--cifar), whose coarse labels give one")
    return heads.HAFrameHead(hierarchy.cifar100_distance_matrix(), feature_dim, seed=args.seed)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    rng = torch.Generator().manual_seed(args.seed)  # seeds GIT's selection and style draws

    # Data
    train, val, test, plain_test, nuisance = load_data(args)
    num_classes = train.num_classes
    counts = train.class_counts
    in_channels = train.images.shape[1]
    resampling = args.method != "erm" if args.resampling == "auto" else args.resampling == "deferred"
    sampler = DeferredResampler(train.targets, start_epoch=args.drs_epoch if resampling else args.epochs + 1, seed=args.seed)
    # Items come with their index: the GIT bank serves each sample's own draws, the oracle finds its base digit.
    loader = DataLoader(WithIndex(train), batch_size=args.batch_size, sampler=sampler, drop_last=len(train) > args.batch_size)

    # GIT (or the oracle): replaces tail-class samples, switched on when re-sampling starts
    augment = None
    selection = ClassThresholdSampler(counts, threshold=args.threshold, p=args.p, rule=args.rule)
    if args.method == "git":
        draw = {} if args.draw == "recommended" else {
            "residual": args.draw == "residual", "styles": args.styles, "appearance_scale": args.appearance_scale}
        if args.warp_extent is not None:
            draw["warp_extent"] = args.warp_extent
        augment = GITAugment.from_pretrained(args.generator, sampler=selection, enabled=False, device=device, **draw)
        if args.draw == "recommended" and "draw" not in augment.metadata:
            raise SystemExit(f"--draw recommended: the generator {args.generator} stores no recommended draw")
        drawn_with = {"residual": augment.residual, "styles": augment.styles, "appearance_scale": augment.appearance_scale,
                      "warp_extent": augment.warp_extent}
        if args.keep_class is not None:
            reference, _ = load_classifier(args.keep_class)
            augment = KeepClass(augment, reference.to(device), num_classes)
        if args.bank_draws:  # V precomputed draws per tail image, drawn on the bank's first call (when GIT starts)
            augment = TailBank(augment, train.float_images(), train.targets, draws=args.bank_draws, enabled=False)
    elif args.method == "oracle":
        plain_train = gdata.load(gdata.plain_version(args.dataset), split="train", seed=args.seed)
        if not torch.equal(plain_train.targets, train.targets):  # same base digits, same order
            raise RuntimeError(f"the plain version of {args.dataset!r} does not match its training split")
        augment = OracleAugment(nuisance, selection, plain_train.float_images())

    # Model, loss, optimizer
    width = args.width
    if args.head in ("etf", "haframe") and 4 * width < num_classes - 1:
        # A fixed frame of C classes needs at least C - 1 feature dimensions.
        width = -(-(num_classes - 1) // 4)
        print(f"--head {args.head} with {num_classes} classes needs >= {num_classes - 1} features: width {args.width} -> {width}", file=sys.stderr)
    model = SmallResNet(in_channels, num_classes, width)
    head = make_head(args, model.feature_dim, num_classes)
    if head is not None:
        model.head = head
    model.to(device)
    criterion, drw = make_loss(args, counts)
    criterion.to(device)
    cosine_loss = None
    if args.head == "haframe":  # HAFrame pulls features toward their class's row of the frame
        from gitaug.longtail.heads import HAFrameCosineLoss

        cosine_loss = HAFrameCosineLoss.from_head(model.head).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay, nesterov=True)
    # One learning-rate step when re-sampling starts (as DRS does), another at 90 % of training.
    milestones = sorted({m for m in (args.drs_epoch, int(0.9 * args.epochs)) if 0 < m < args.epochs})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)

    started = time.time()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        if augment is not None:
            augment.enabled = epoch >= args.drs_epoch
        if drw is not None:
            criterion.weight = drw.weights(epoch).to(device)
        model.train()
        total_loss, batches = 0.0, 0
        for images, labels, indices in loader:
            if isinstance(augment, (OracleAugment, TailBank)):  # these need each sample's dataset index
                images, labels = augment(images, labels, indices, generator=rng)
            elif augment is not None:
                images, labels = augment(images, labels, generator=rng)
            images, labels = images.to(device), labels.to(device)
            if cosine_loss is None:
                loss = criterion(model(images), labels)
            else:
                features = model.features(images)
                loss = 0.6 * criterion(model.head(features), labels) + 0.4 * cosine_loss(features, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss, batches = total_loss + loss.item(), batches + 1
        scheduler.step()
        print(f"epoch {epoch + 1:3d}/{args.epochs}  loss {total_loss / max(batches, 1):.4f}", file=sys.stderr)
    train_seconds = time.time() - started

    # Evaluation: balanced accuracy (mean of per-class accuracy) and invariance per class
    test_acc = per_class_accuracy(model, test, device, num_classes)
    results = {
        "method": args.method,
        "dataset": str(args.cifar) if args.cifar is not None else args.dataset,
        "seed": args.seed,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "class_counts": counts.tolist(),
        "test_balanced_accuracy": test_acc.mean().item(),
        "test_per_class_accuracy": test_acc.tolist(),
        "train_seconds": train_seconds,
    }
    if args.method == "git":
        # Which GIT draws the classifier saw: a bank of V per tail image, or a generator pass per sample.
        results["git_draws"] = "bank" if args.bank_draws else "live"
        results["bank_draws"] = args.bank_draws or None
        results["bank_megabytes"] = augment.nbytes / 1e6 if args.bank_draws else None
        results["draw"] = drawn_with  # what GIT drew with ('recommended' resolved)
        if args.keep_class is not None:
            results["keep_class"] = {"drawn_per_class": augment.drawn.tolist(), "undone_per_class": augment.undone.tolist()}
    if args.cifar is not None and num_classes == 100:
        # Mistake severity on CIFAR-100's superclass tree (what HAFrame is meant to lower).
        from gitaug.longtail.hierarchy import average_hierarchical_distance_topk, average_mistake_severity, cifar100_distance_matrix

        distance = cifar100_distance_matrix()
        logits, labels = predict(model, test, device)
        results["mistake_severity"] = average_mistake_severity(logits, labels, distance)
        results["top5_hierarchical_distance"] = average_hierarchical_distance_topk(logits, labels, distance, k=5)
    if val is not None:
        results["val_balanced_accuracy"] = per_class_accuracy(model, val, device, num_classes).mean().item()
    if nuisance is not None:
        # eKLD compares predicted distributions: use the ones the loss trained. LDAM's are its
        # scaled logits; a cosine head's raw outputs in [-1, 1] would give near-uniform softmaxes.
        scale = getattr(criterion, "scale", 1.0)
        scored = model if scale == 1.0 else ScaledLogits(model, scale)
        result = ekld(scored, plain_test, nuisance, n_per_class=args.ekld_inputs, m_per_input=args.ekld_draws, device=device, seed=args.seed, class_sizes=counts)
        results["ekld_per_class"] = [float(v) for v in result.per_class]
        results["ekld_summary"] = summarize_ekld(result)
    if args.save_classifier is not None:
        # The logit scale travels with the weights: eKLD must see the distributions the loss trained.
        save_classifier(model, args.save_classifier, logit_scale=getattr(criterion, "scale", 1.0),
                        class_names=train.classes, class_counts=counts)
        results["classifier"] = str(args.save_classifier)
    print(json.dumps({k: results[k] for k in ("method", "test_balanced_accuracy")} | ({"ekld": results["ekld_summary"]} if "ekld_summary" in results else {})))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(json.dumps(results, indent=2))
        os.replace(tmp, args.out)
    return results


if __name__ == "__main__":
    main()
