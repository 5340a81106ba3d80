import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from resnet_lab.integrations.huggingface import GradientMonitorCallback

torch.manual_seed(0)
config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, num_labels=2)                 # built locally: nothing downloaded
ids = torch.randint(5, 100, (64, 12))
data = [{"input_ids": i, "labels": int(i[0] > 50)} for i in ids]
args = TrainingArguments("hf_run", max_steps=20, per_device_train_batch_size=16, logging_steps=5,
                         report_to=["tensorboard"], use_cpu=True, save_strategy="no", disable_tqdm=True)
trainer = Trainer(BertForSequenceClassification(config), args, train_dataset=data)
callback = GradientMonitorCallback.attach(trainer, nonfinite="skip")   # first: report_to loggers get it too
trainer.train()
print(callback.monitor.verdict())
print({k: round(v, 3) for k, v in trainer.state.log_history[-2].items() if "global" in k or k == "grad_norm"})
print(callback.out, *sorted(p.name for p in callback.report_paths))
