"""Distillation of a small 2D pose model from the MoveNet Thunder ONNX teacher (pseudo-labels).

Why a package of its own: no pretrained 2D pose weights can be downloaded here, so the bundled default
model is trained on real person images labelled by an Apache-2.0 teacher. ``teacher`` runs MoveNet on
person boxes, ``pseudo_labels`` writes its keypoints as a COCO keypoints JSON (so the ordinary
``CocoTopDownDataset`` / ``prunepose train`` path trains the student unchanged), ``heldout`` turns the
real ground-truth fixtures never seen in training into one COCO-17 JSON, and ``evaluate`` scores the
teacher and the student on the same persons (mean OKS and pycocotools OKS AP).
"""
