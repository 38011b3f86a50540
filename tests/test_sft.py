"""SFT-KD-Recon: the student-friendly teacher, its loss, student initialisation, stages."""

import json

import pytest
import torch
import torch.nn.functional as F

from kdmri.checkpoint import BEST, LAST, arch_of, build_from_arch, load_checkpoint, load_model
from kdmri.config import ConfigError
from kdmri.distill.sft import sft_loss
from kdmri.errors import DataError
from kdmri.evaluation.evaluate import evaluate
from kdmri.models.dccnn import DCCNN, STUDENT, DCCNNConfig, count_parameters
from kdmri.models.sft import SFTTeacher
from kdmri.physics.operators import data_consistency
from kdmri.tools.cli import main
from kdmri.training import train
from kdmri.training.engine import StageRunner
from kdmri.training.stages import get_stage
from kdmri.training.stages import load_sft_branches as init_student_from_sft
from kdmri.training.strategy import SingleProcess

STUDENT_CASCADE = 9_857  # 1->32->32->1, 3x3 convs with bias


def _inputs(b=2, h=16, w=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, 1, h, w, generator=g)
    mask = (torch.rand(w, generator=g) < 0.4).float().expand(h, w).clone()
    mask[:, 0] = 1
    k = torch.fft.fft2(target.to(torch.complex64), norm="ortho") * mask
    x = torch.fft.ifft2(k, norm="ortho").real
    return x, k, mask, target


def test_parameter_counts_and_arch_round_trip():
    torch.manual_seed(0)
    model = SFTTeacher()
    assert model.inference_parameters() == 141_765
    assert count_parameters(model) == 141_765 + 4 * STUDENT_CASCADE
    arch = arch_of(model)
    assert arch["kind"] == "sft" and arch["student"] == STUDENT.to_dict()
    rebuilt = build_from_arch(json.loads(json.dumps(arch)))  # plain metadata survives JSON
    assert isinstance(rebuilt, SFTTeacher) and count_parameters(rebuilt) == count_parameters(model)
    with pytest.raises(ValueError, match="n_cascades"):
        SFTTeacher(student_config=DCCNNConfig(n_cascades=4, n_convs=3))
    with pytest.raises(DataError, match="'teacher' and 'student'"):
        SFTTeacher.from_arch({"kind": "sft", "teacher": {}})


def test_forward_is_the_teacher_and_branches_by_hand():
    torch.manual_seed(1)
    model = SFTTeacher().eval()
    x, k, mask, _ = _inputs()
    with torch.no_grad():
        out = model(x, k, mask)
        ref = model.teacher(x, k, mask)
        t_out, branches = model.forward_branches(x, k, mask)
    assert torch.equal(out.image, ref.image)
    assert list(out.features) == list(ref.features) == model.feature_names()
    assert all(torch.equal(out.features[n], ref.features[n]) for n in ref.features)
    assert "cascade3.conv5" in out.features and torch.equal(t_out.image, ref.image)
    assert len(branches) == 4 and all(b.shape == x.shape for b in branches)
    with torch.no_grad():
        for i in range(1, 5):  # branch i: teacher cascade i, then student cascades i+1..5
            y = ref.cascades[i - 1]
            for c in range(i + 1, 6):
                block = model.branch_cascades[c - 2]
                y = data_consistency(block(y)[0], k, mask)  # no residual (default)
            assert torch.allclose(branches[i - 1], y, atol=1e-6), f"branch {i}"
    # without features the result is the same
    with torch.no_grad():
        assert torch.equal(model(x, k, mask, return_features=False).image, ref.image)


def test_sft_loss_by_hand_both_reductions():
    target = torch.zeros(1, 1, 2, 2)
    teacher = torch.full((1, 1, 2, 2), 0.5)
    branches = [torch.full((1, 1, 2, 2), v) for v in (0.1, 0.2, 0.3, 0.4)]
    total, logs = sft_loss(teacher, branches, target, branch_weight=2.0, imitation_weight=3.0)
    # 0.5 + 2 * mean(0.1..0.4) + 3 * mean(|0.4|, |0.3|, |0.2|, |0.1|)
    assert total.item() == pytest.approx(0.5 + 2 * 0.25 + 3 * 0.25)
    assert logs["teacher_l1"] == pytest.approx(0.5) and logs["branch_l1"] == pytest.approx(0.25)
    assert logs["imitation"] == pytest.approx(0.25) and logs["branch3_l1"] == pytest.approx(0.3)
    total, logs = sft_loss(teacher, branches, target, 2.0, 3.0, reduction="reference")
    assert logs["imitation"] == pytest.approx(0.25 / 4)  # divided by the 4 elements
    assert total.item() == pytest.approx(0.5 + 2 * 0.25 + 3 * 0.25 / 4)
    with pytest.raises(ValueError, match="reduction"):
        sft_loss(teacher, branches, target, reduction="sum")
    with pytest.raises(ValueError, match=r"branch_imgs\[1\]"):
        sft_loss(teacher, [branches[0], torch.zeros(1, 1, 3, 2)], target)
    with pytest.raises(ValueError, match="at least one"):
        sft_loss(teacher, [], target)


def test_sft_loss_random_values_and_gradient_flow():
    g = torch.Generator().manual_seed(3)
    target = torch.rand(2, 1, 5, 4, generator=g)
    t0 = torch.rand(2, 1, 5, 4, generator=g)
    b0 = [torch.rand(2, 1, 5, 4, generator=g) for _ in range(4)]

    def grads(detach_teacher, plain):
        t = t0.clone().requires_grad_(True)
        bs = [b.clone().requires_grad_(True) for b in b0]
        if plain:  # the undetached formula written out
            imit = sum(F.l1_loss(b, t.detach() if detach_teacher else t) / b.numel() for b in bs) / 4
            total = F.l1_loss(t, target) + 0.5 * sum(F.l1_loss(b, target) for b in bs) / 4 + 2.0 * imit
        else:
            total, _ = sft_loss(t, bs, target, 0.5, 2.0, reduction="reference",
                                detach_teacher=detach_teacher)
        total.backward()
        return total.detach(), t.grad, [b.grad for b in bs]

    for detach in (False, True):
        v, gt, gb = grads(detach, plain=False)
        v_ref, gt_ref, gb_ref = grads(detach, plain=True)
        assert torch.allclose(v, v_ref, atol=1e-7)
        assert torch.allclose(gt, gt_ref, atol=1e-9)
        assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(gb, gb_ref))
    # the imitation term reaches the teacher by default, not with detach_teacher=True
    _, gt_free, _ = grads(False, plain=False)
    _, gt_det, _ = grads(True, plain=False)
    assert not torch.allclose(gt_free, gt_det)


def test_sft_stages_are_registered():
    for name in ("sft-teacher", "sft-feature", "sft-kd"):
        spec = get_stage(name)
        assert spec.name == name and spec.task == "recon"
    assert get_stage("sft-teacher").arch == "sft" and get_stage("sft-kd").teacher_method == "sft"
    with pytest.raises(ConfigError, match="sft-feature"):
        get_stage("sft-nope")


def test_sft_stages_end_to_end(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1, max_train_slices=2)
    out = train(cfg, "sft-teacher")
    assert out == cfg.experiment("teacher", "sft") and out.name == "sft_teacher"
    last = load_checkpoint(out / LAST)
    assert last["config"]["method"] == "sft" and last["arch"]["kind"] == "sft"
    assert set(last["history"][0]) >= {"train_teacher_l1", "train_branch_l1", "train_imitation",
                                       "val_loss"}
    assert "method: sft" in (out / "config.yaml").read_text()
    assert train(cfg, "sft-teacher") == out  # complete: resumes (same resolved config), no rerun
    # checkpoint round trip
    sft, ckpt = load_model(out / BEST)
    assert isinstance(sft, SFTTeacher)
    assert all(torch.equal(v, ckpt["model"][k]) for k, v in sft.state_dict().items())
    rep = evaluate(cfg, "sft-teacher")
    assert rep["parameters"] == 141_765 and rep["method"] == "sft" and rep["role"] == "teacher"
    assert json.loads((out / "report.json").read_text())["parameters"] == 141_765
    assert (out / "metrics.csv").is_file()

    # init_student_from_sft: cascades 2..5 from the branches, cascade 1 untouched
    torch.manual_seed(5)
    student = DCCNN(STUDENT)
    first = {k: v.clone() for k, v in student.cascades[0].state_dict().items()}
    names = init_student_from_sft(student, out / BEST)
    assert len(names) == 4 * 6 and all(not n.startswith("cascades.0.") for n in names)
    assert all(torch.equal(first[k], v) for k, v in student.cascades[0].state_dict().items())
    for j in range(4):
        a, b = student.cascades[j + 1].state_dict(), sft.branch_cascades[j].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in b)

    # the sft-feature stage starts from the branches and distils from the SFT teacher
    st = StageRunner(get_stage("sft-feature"), tiny_cfg, SingleProcess())  # method kdmri is overridden
    assert st.cfg.feature_init == "sft" and st.experiment == cfg.experiment("feature", "sft")
    ds = st.task.dataset(st.cfg, "train")
    model = st.build_model()
    st.setup(model, ds)
    assert isinstance(st.teacher, SFTTeacher)
    for j in range(4):
        a, b = model.cascades[j + 1].state_dict(), sft.branch_cascades[j].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in b)

    feat = train(cfg, "sft-feature")
    assert feat.name == "sft_feature" and "train_feature" in load_checkpoint(feat / LAST)["history"][0]
    kd_cfg = get_stage("sft-kd").configure(cfg)
    assert kd_cfg.kd_init == "feature" and kd_cfg.experiment("feature") == feat
    kd = train(cfg, "sft-kd")
    assert kd.name == "sft_kd"
    assert {"train_l1", "train_imitation"} <= set(load_checkpoint(kd / LAST)["history"][0])
    rep = evaluate(cfg, "sft-kd")
    assert rep["parameters"] == 49_285 and (kd / "report.json").is_file()

    # clear errors: a non-SFT checkpoint, a student that does not fit
    with pytest.raises(DataError, match="not an SFT checkpoint"):
        init_student_from_sft(DCCNN(STUDENT), feat / BEST)
    with pytest.raises(DataError, match="shape"):
        init_student_from_sft(DCCNN(DCCNNConfig(n_convs=3, channels=16)), out / BEST)
    with pytest.raises(DataError, match="branch cascade"):
        init_student_from_sft(DCCNN(DCCNNConfig(n_convs=4)), out / BEST)
    with pytest.raises(DataError, match="4 SFT branch cascades"):
        init_student_from_sft(DCCNN(DCCNNConfig(n_cascades=3, n_convs=3)), out / BEST)


def test_cli_sft_teacher(tiny_cfg, tmp_path, capsys):
    common = ["--data-root", tiny_cfg.data_root, "--experiments-root", str(tmp_path / "cli"),
              "--dataset", "tiny", "--epochs", "1", "--no-progress", "--set", "batch_size=3",
              "--set", "max_train_slices=2", "--method", "other"]
    assert main(["train", "--stage", "sft-teacher", *common]) == 0
    assert "sft_teacher" in capsys.readouterr().out
    assert main(["evaluate", "--stage", "sft-teacher", *common]) == 0
    assert "PSNR" in capsys.readouterr().out
    report = tmp_path / "cli" / "tiny" / "acc_4x" / "sft_teacher" / "report.json"
    assert json.loads(report.read_text())["parameters"] == 141_765
    assert not (tmp_path / "cli" / "tiny" / "acc_4x" / "other_teacher").exists()
