"""Transfer learning, in one room: a pretrained network as one node, its stages and freeze
point, the strategies that set them, and the plans that move them while training.

    architectures.py  the torchvision networks a backbone can be: build, stages, size
    backbone.py       the Backbone module and the freeze point's one meaning
    layers.py         the backbone layer types (torchvision, and an earlier run)
    runs.py           an earlier run read as a backbone: its network minus its head
    stages.py         a backbone node's stages as the views show them
    strategies.py     the four strategies and the recommender (data size × similarity)
    edits.py          the canvas edits: start from a backbone, use a run as a backbone
    finetune.py       the fine-tuning plan: two phases, gradual unfreezing, stage rates

Loading weight files is below this room (studio/pretrained.py, studio/weights.py), so the
builder can load a backbone's weights without importing transfer learning.
"""
