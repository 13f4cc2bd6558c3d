"""The 2025 baselines (TSV-Merge, Iso-C) against their papers' formulas on small matrices, the added
mergekit methods (DELLA, Breadcrumbs, SCE), and every method through the baseline rule's function."""

import pytest
import torch

from selfdev.algorithms import reference_paths
from selfdev.algorithms.iso_c import merge as iso_c
from selfdev.algorithms.tsv_merge import merge as tsv_merge
from selfdev.sandbox.probe import check_program
from selfdev.study import baselines
from conftest import sandbox


def _tasks(n, shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=torch.float64).float() for _ in range(n)]


def test_iso_c_flattens_the_spectrum_of_the_sum():
    tvs = _tasks(3, (12, 8))
    out = iso_c(tvs)
    u, s, vh = torch.linalg.svd(sum(tvs), full_matrices=False)
    # Iso-C: sigma_bar * U V^T with sigma_bar the mean singular value of the summed task matrix.
    assert torch.allclose(out, s.mean() * u @ vh, atol=1e-5)
    s_out = torch.linalg.svdvals(out)
    assert torch.allclose(s_out, torch.full_like(s_out, float(s.mean())), rtol=1e-4)
    assert not torch.allclose(out, sum(tvs), atol=1e-3)  # the spectrum really changed
    vec = _tasks(3, (10,))
    assert torch.allclose(iso_c(vec), torch.stack(vec).mean(0))  # 1-D: averaged


def test_tsv_merge_is_the_sum_when_tasks_use_orthogonal_subspaces():
    # Four tasks of rank 2 in disjoint coordinate blocks of an 8x8 matrix: each task's kept directions
    # (8 // 4 = 2) are all of it, the stacked singular vectors are already orthonormal, so TSV-M = sum.
    q_left, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))
    q_right, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(2)))
    tvs = []
    for i in range(4):
        core = torch.diag(torch.tensor([3.0 - i * 0.5, 1.0 + i * 0.25]))
        tvs.append(q_left[:, 2 * i:2 * i + 2] @ core @ q_right[:, 2 * i:2 * i + 2].T)
    assert torch.allclose(tsv_merge(tvs), sum(tvs), atol=1e-5)


def test_tsv_merge_matches_the_paper_formula_with_lowdin_orthogonalisation():
    tvs = _tasks(3, (9, 12), seed=3)
    k = 9 // 3
    svds = [torch.linalg.svd(t.double(), full_matrices=False) for t in tvs]
    u = torch.cat([a[:, :k] for a, _, _ in svds], dim=1)
    s = torch.cat([b[:k] for _, b, _ in svds])
    v = torch.cat([c[:k, :].T for _, _, c in svds], dim=1)

    def lowdin(x):
        # The orthonormal matrix closest to x (Procrustes): x (x^T x)^(-1/2), via an eigendecomposition.
        w, q = torch.linalg.eigh(x.T @ x)
        return x @ q @ torch.diag(w.rsqrt()) @ q.T

    expected = lowdin(u) @ torch.diag(s) @ lowdin(v).T
    assert torch.allclose(tsv_merge(tvs).double(), expected, atol=1e-4)
    # Decorrelated: the merged matrix's kept directions are orthonormal, so its singular values are the
    # kept ones of the tasks; the raw stacks' directions are not orthonormal (that was the work to do).
    assert (u.T @ u - torch.eye(3 * k, dtype=u.dtype)).abs().max() > 1e-2
    kept = torch.linalg.svdvals(tsv_merge(tvs).double())[:3 * k]
    assert torch.allclose(kept, s.sort(descending=True).values, atol=1e-4)
    vec = _tasks(3, (7,))
    assert torch.allclose(tsv_merge(vec), torch.stack(vec).mean(0))


def test_tsv_and_iso_c_are_executable_programs_and_baseline_methods():
    limits = sandbox(wall_s=10, cpu_s=10, memory_mb=2048)
    for name in ("tsv_merge", "iso_c"):
        assert check_program(reference_paths()[name].read_text(), limits, 4).executable, name
    base = torch.zeros(6, 5)
    tvs = _tasks(2, (6, 5), seed=4)
    for method, fn in (("tsv", tsv_merge), ("iso_c", iso_c)):
        out = baselines.mergekit_delta(method, base, tvs, {"lambda": 0.7})
        assert torch.allclose(out, 0.7 * fn(tvs))
        assert baselines.grid(method, 3, (0.25, 1.25), (0.2, 0.8)) == [{"lambda": 0.25}, {"lambda": 0.75},
                                                                        {"lambda": 1.25}]


@pytest.mark.parametrize("method", ["della", "breadcrumbs", "sce"])
def test_added_mergekit_methods_run_and_are_searchable(method):
    base = torch.randn(16, 12, generator=torch.Generator().manual_seed(5))
    tvs = _tasks(3, (16, 12), seed=6)
    params = baselines.random_configs(method, 2, 3, (0.25, 1.25), (0.2, 0.8), (0.5, 1.5), seed=0)
    for p in params:
        out = baselines.mergekit_delta(method, base, tvs, p, seed=1)
        assert out.shape == base.shape and torch.isfinite(out).all()
        assert torch.equal(out, baselines.mergekit_delta(method, base, tvs, p, seed=1))  # seeded
        assert not torch.allclose(out, sum(tvs))
    assert ("weights" in params[0]) == (method != "sce") and len(baselines.grid(method, 2, (0.5, 1.0), (0.2, 0.8))) \
        == (2 if method == "sce" else 4)
    # Sparsifying methods keep fewer entries at lower density.
    if method in ("della", "breadcrumbs"):
        sparse = baselines.mergekit_delta(method, base, tvs, {"density": 0.2, "lambda": 1.0}, seed=1)
        dense = baselines.mergekit_delta(method, base, tvs, {"density": 0.9, "lambda": 1.0}, seed=1)
        assert (sparse == 0).sum() > (dense == 0).sum()


@pytest.mark.parametrize("method", sorted(baselines.METHODS))
def test_every_method_runs_as_the_baseline_rule_runs_it(micro_world, method, tmp_path):
    """The rule's function (`baseline`, grid mode) on the micro world, in-process: each configuration of the
    grid scored on dev, the best once on test (the micro workflow runs five of the methods through
    Snakemake, in both modes)."""
    import json

    from selfdev.paths import Paths
    from selfdev.scoring.programs import world_inputs
    from selfdev.study.steps import baseline_step

    cfg = {**micro_world, "baselines": {**micro_world["baselines"], "grid_size": 2}}
    files, out = world_inputs(cfg, "dev"), tmp_path / "baseline.json"
    b = cfg["baselines"]
    configs = baselines.grid(method, 2, b["lambda_range"], b["density_range"], b["beta_range"])
    baseline_step(config=cfg, family="main", method=method, mode="grid", seed_dir=files["seed_dir"],
                  task_vectors=files["task_vectors"], dev_path=files["rows"], test_path=Paths(cfg["results"]).data("test"),
                  shots_path=files["shots"], budget_score_paths=[], out_path=str(out), threads=1)
    rec = json.loads(out.read_text())
    assert rec["method"] == method and [e["params"] for e in rec["evaluations"]] == configs
    assert rec["best_params"] in configs and rec["n_test"] == 20 and len(rec["test_correct"]) == 20
    assert rec["dev_accuracy"] == max(e["dev_accuracy"] for e in rec["evaluations"] if not e["partial"])
