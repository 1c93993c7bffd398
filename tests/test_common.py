"""scikit-learn's estimator checks on every estimator of the package."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_betavae import BetaTCVAE, BetaVAE, DIPVAE, FactorVAE
from sklearn_betavae.model_selection import UDRSelector

# Small and quick: the checks fit hundreds of times on tiny data.
ESTIMATORS = [
    BetaVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=2, batch_size=16),
    BetaTCVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=2, batch_size=16),
    DIPVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=2, batch_size=16),
    FactorVAE(n_components=2, hidden_layer_sizes=(8,), discriminator_hidden_layer_sizes=(8,),
              max_epochs=2, batch_size=16),
    UDRSelector(BetaVAE(n_components=2, hidden_layer_sizes=(8,), max_epochs=2, batch_size=16),
                n_seeds=2),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    # Each scikit-learn API check passes with no expected failure.
    check(estimator)
