"""FractalFlow from Metaflow's @pypi docs; its @pypi lives in flowenv.toml ([steps.plot]).

flowenv lock && python fractalflow.py --environment=flowenv run
"""

from metaflow import FlowSpec, card, current, step
from metaflow.cards import Image


class FractalFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.plot)

    @card(type="blank")
    @step
    def plot(self):
        # Installed only in this step's environment, hence imported here.
        import pyfracgen as pf  # pylint: disable=import-error
        from matplotlib import pyplot as plt  # pylint: disable=import-error

        string = "AAAAAABBBBBB"
        xbound = (2.5, 3.4)
        ybound = (3.4, 4.0)
        res = pf.lyapunov(
            string, xbound, ybound, width=4, height=3, dpi=300, ninit=2000, niter=2000
        )
        pf.images.markus_lyapunov_image(res, plt.cm.bone, plt.cm.bone_r, gammas=(8, 1))
        current.card.append(Image.from_matplotlib(plt.gcf()))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FractalFlow()
