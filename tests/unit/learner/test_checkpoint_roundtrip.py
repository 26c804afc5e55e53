"""The checkpoint round trip: model, trainer state, RNG, pruning and same-step rewrites."""

import random

import torch

from services.learner.checkpoint import LearnerState, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(3, 2)

    def save_pretrained(self, folder, safe_serialization=True):
        folder.mkdir(parents=True)
        torch.save(self.state_dict(), folder / "w.pt")


def test_checkpoint_roundtrip_and_pruning(tmp_path):
    model = _Tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model.w.weight.sum().backward()
    opt.step()
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, model, None, {"optimizer": opt.state_dict(), "updates": step},
                        LearnerState(step=step, policy_version=step, committed=["b1", f"b{step}"]), keep=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 6]
    torch.manual_seed(0)
    random.seed(0)
    save_checkpoint(tmp_path, model, None, {"updates": 8}, LearnerState(step=8), keep=2)
    expected = (torch.rand(1).item(), random.random())  # the draws right after the save
    ckpt = latest_checkpoint(tmp_path)
    torch.manual_seed(1)
    random.seed(1)
    # committing again at the same step rewrites state.json only: model, trainer and RNG stay
    save_checkpoint(tmp_path, model, None, {"updates": 99}, LearnerState(step=8, committed=["late"]), keep=2)
    folder, trainer_state, state = load_checkpoint(ckpt, torch.device("cpu"))
    assert folder == ckpt / "model" and (folder / "w.pt").exists()
    assert trainer_state["updates"] == 8 and state.step == 8 and state.committed == ["late"]
    assert not list(tmp_path.glob("checkpoints/.tmp-*"))
    assert (torch.rand(1).item(), random.random()) == expected
    opt_state = load_checkpoint(tmp_path / "checkpoints" / "step-6", torch.device("cpu"))[1]["optimizer"]
    opt2 = torch.optim.AdamW(_Tiny().parameters(), lr=0.1)
    opt2.load_state_dict(opt_state)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
