"""Several pooling rules' CRNNs on one shared trunk (audioenc.timing.shared_trunk), against the CRNN
trained alone (audioenc.timing.weak.train_weak_encoder) as the reference."""

from __future__ import annotations

import torch

from audioenc.audio.synth_events import synthesize_event_corpus
from audioenc.timing.evaluation import clip_targets
from audioenc.timing.fitting import clip_bce, collate_padded
from audioenc.timing.shared_trunk import SharedTrunkCRNNs, train_shared_trunk
from audioenc.timing.weak import CRNNConfig, WeakCRNN, load_feature_sets, train_weak_encoder

TINY = CRNNConfig(stem_channels=4, conv_channels=(8, 16), rnn_hidden=8, rnn_cell="lstm")


def _sets(tmp_path):
    root = synthesize_event_corpus(tmp_path / "corpus", (24, 8, 4), seed=3)
    sets = load_feature_sets(root, ("train", "validation"))
    return (sets["train"], sets["validation"]), sets["train"].split.classes


def test_one_rule_on_a_shared_trunk_is_that_rule_trained_alone(tmp_path):
    sets, classes = _sets(tmp_path)
    budget = {"epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "config": TINY, "classes": classes, "patience": 1}
    alone, alone_history = train_weak_encoder(sets, "attention", 5, **budget)
    shared, histories, seconds = train_shared_trunk(sets, ["attention"], 5, **budget)
    ours = shared["attention"].state_dict()
    assert ours.keys() == alone.state_dict().keys()
    assert all(torch.equal(ours[key], alone.state_dict()[key]) for key in ours)
    history = histories["attention"]
    assert history.valid_loss == alone_history.valid_loss and history.train_loss == alone_history.train_loss
    assert (history.best_epoch, history.stopped) == (alone_history.best_epoch, alone_history.stopped)
    assert seconds > 0


def test_the_trunk_is_shared_and_each_head_learns_from_its_own_loss_only():
    torch.manual_seed(0)
    models = {rule: WeakCRNN(("a", "b"), rule, TINY) for rule in ("max", "attention")}
    joint = SharedTrunkCRNNs(models)
    assert models["max"].cnn is models["attention"].cnn and models["max"].rnn is models["attention"].rnn
    trunk = sum(p.numel() for p in models["max"].cnn.parameters()) + sum(
        p.numel() for p in models["max"].rnn.parameters()
    )
    heads = sum(p.numel() for m in models.values() for p in [*m.head.parameters(), *m.pooling.parameters()])
    assert sum(p.numel() for p in joint.parameters()) == trunk + heads  # the trunk counted once
    joint.eval()
    log_mel = torch.randn(3, 64, 80)
    mask = torch.ones(3, 80, dtype=torch.bool)
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    outputs = joint(log_mel, mask)
    for rule, model in models.items():  # the joint forward is each model's own forward
        assert torch.equal(outputs[rule].clip_scores, model(log_mel, mask).clip_scores)
    losses = {rule: clip_bce(output.clip_scores, targets) for rule, output in outputs.items()}
    head = models["max"].head.weight
    (from_sum,) = torch.autograd.grad(losses["max"] + losses["attention"], head, retain_graph=True)
    (from_own,) = torch.autograd.grad(losses["max"], head)
    assert torch.allclose(from_sum, from_own, atol=0, rtol=0)


def test_each_rule_keeps_the_weights_of_its_own_best_epoch(tmp_path):
    sets, classes = _sets(tmp_path)
    rules = ["mean", "max", "attention"]
    budget = {"epochs": 4, "batch_size": 8, "learning_rate": 1e-2, "config": TINY, "classes": classes}
    models, histories, _ = train_shared_trunk(sets, rules, 0, **budget)
    valid_inputs = sets[1].inputs()
    targets = torch.from_numpy(clip_targets(sets[1].split, classes))
    for rule in rules:
        history = histories[rule]
        assert len(history.valid_loss) == 4 and history.stopped == "max_epochs"
        assert history.best_epoch == min(range(4), key=history.valid_loss.__getitem__)
        model = models[rule]
        assert model.pooling_name == rule and not model.training
        with torch.no_grad():  # the standalone model reproduces its best epoch's validation loss
            batch, mask = collate_padded(valid_inputs)
            scores = torch.cat(
                [model(*collate_padded(valid_inputs[i : i + 8])).clip_scores for i in range(0, len(valid_inputs), 8)]
            )
        assert float(clip_bce(scores, targets)) == history.valid_loss[history.best_epoch]
    # Standalone copies: changing one rule's trunk leaves the others'.
    with torch.no_grad():
        next(models["mean"].cnn.parameters()).add_(1.0)
    assert not torch.equal(next(models["mean"].cnn.parameters()), next(models["max"].cnn.parameters()))
