"""Public checks of the exercise `bootstrap` (4.4), run in the student's kernel by `grader.check("bootstrap")`."""
from otter.test_files import test_case

OK_FORMAT = False
name = "bootstrap"
points = 2


@test_case()
def test_the_interval_is_paired(paired_bootstrap_ci, np):
    rng = np.random.default_rng(1)
    before = rng.uniform(0, 1, 200)
    after = before - 0.05 + rng.normal(0, 0.01, 200)
    low, high = paired_bootstrap_ci(before, after, n_resamples=2000, seed=0)
    assert low < -0.05 < high and high - low < 0.01, \
        "Resample pairs, not two lists. Draw one set of indices per resample and take before and after at the " \
        "same ones; resampling them apart ignores that both were measured on the same prompts, and the interval " \
        "comes out many times too wide."


@test_case()
def test_the_seed_decides_the_draw(paired_bootstrap_ci, np):
    rng = np.random.default_rng(2)
    before, after = rng.uniform(0, 1, 50), rng.uniform(0, 1, 50)
    first = paired_bootstrap_ci(before, after, n_resamples=500, seed=3)
    assert first == paired_bootstrap_ci(before, after, n_resamples=500, seed=3), \
        "The same seed gave two intervals: draw the resamples with np.random.default_rng(seed), so that a run's " \
        "interval can be computed again."
    assert first != paired_bootstrap_ci(before, after, n_resamples=500, seed=4), \
        "Another seed gave the same interval: the resamples must be drawn from default_rng(seed)."


@test_case(success_message="public checks passed; the autograder runs more")
def test_the_ends_are_quantiles_of_resampled_means(paired_bootstrap_ci, np):
    before = np.zeros(40)
    after = np.r_[np.zeros(36), np.ones(4)]  # a few large changes: the resampled means are skewed
    low, high = paired_bootstrap_ci(before, after, n_resamples=1, seed=0)
    assert low == high, \
        "With n_resamples=1 there is one resampled mean, so both ends must be it. The ends are the quantiles of " \
        "the resampled means; a formula (mean +- 1.96 standard errors) ignores the resamples."
    low, high = paired_bootstrap_ci(before, after, n_resamples=4000, seed=0, level=0.9)
    wide = paired_bootstrap_ci(before, after, n_resamples=4000, seed=0, level=0.99)
    assert wide[0] <= low < 0.1 < high <= wide[1], \
        "The interval must contain the mean change (0.1), and a higher level must give a wider interval."
