"""ScikitFlow from Metaflow's @conda docs; its @conda lives in flowenv.toml ([steps.start]).

flowenv lock && python scikitflow.py --environment=flowenv run
"""

from metaflow import FlowSpec, card, step


class ScikitFlow(FlowSpec):
    @card
    @step
    def start(self):
        from sklearn.datasets import load_iris  # pylint: disable=import-error

        self.data = load_iris()
        self.next(self.end)

    @step
    def end(self):
        # end runs in base, without scikit-learn: it must not touch self.data.
        pass


if __name__ == "__main__":
    ScikitFlow()
