import lightning.pytorch as L
import torch
from torch.nn import functional as F

from resnet_lab.data import load_data
from resnet_lab.integrations.lightning import GradientMonitorCallback
from resnet_lab.models import create_model


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = create_model("resnet20", num_classes=10, in_channels=1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


L.seed_everything(0, verbose=False)
ds = load_data("digits")                       # bundled with scikit-learn: nothing to download
x = (ds.x_train.float() / 255 - ds.mean[0]) / ds.std[0]
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, ds.y_train), batch_size=64, shuffle=True)
callback = GradientMonitorCallback(nonfinite="skip", every=5)   # other keywords go to GradientMonitor
trainer = L.Trainer(max_steps=20, logger=L.loggers.CSVLogger("logs", name="digits"), callbacks=[callback],
                    log_every_n_steps=5, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(Classifier(), loader)
print(callback.monitor.verdict())
print(callback.out, *sorted(p.name for p in callback.report_paths))
