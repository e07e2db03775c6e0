"""About page: the three architectures with diagrams, the data and its licence, how to train."""

from __future__ import annotations

import streamlit as st

from seg_core import examples
from seg_core.palette import CLASS_NAMES

# Drawn top to bottom at their natural size (``width="content"``): a left-to-right chain of a dozen
# boxes was scaled down to the column, to about 8 px text.
NODE = 'node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica", fontsize=15, margin="0.15,0.06"]'

UNET_DOT = """
digraph unet {
  rankdir=TB; nodesep=0.5; ranksep=0.3; %s;
  in [label="photo  3 x H x W", fillcolor="#ffffff"];
  e1 [label="ResNet-18 stage 1  /2"]; e2 [label="stage 2  /4"]; e3 [label="stage 3  /8"];
  e4 [label="stage 4  /16"]; e5 [label="stage 5  /32"];
  d4 [label="up + concat  /16", fillcolor="#fdf1e3"]; d3 [label="up + concat  /8", fillcolor="#fdf1e3"];
  d2 [label="up + concat  /4", fillcolor="#fdf1e3"]; d1 [label="up + concat  /2", fillcolor="#fdf1e3"];
  d0 [label="up  /1", fillcolor="#fdf1e3"]; out [label="19 class scores  H x W", fillcolor="#ffffff"];
  {rank=same; e1; d1} {rank=same; e2; d2} {rank=same; e3; d3} {rank=same; e4; d4} {rank=same; in; d0}
  in -> e1 -> e2 -> e3 -> e4 -> e5 -> d4 -> d3 -> d2 -> d1 -> d0 -> out;
  edge [style=dashed, color="#888888", constraint=false];
  e4 -> d4; e3 -> d3; e2 -> d2; e1 -> d1;
}
""" % NODE

FCN_DOT = """
digraph fcn8s {
  rankdir=TB; nodesep=0.35; ranksep=0.35; %s;
  in [label="photo  3 x H x W", fillcolor="#ffffff"];
  enc [label="encoder: VGG16-BN or ResNet-50"];
  f8 [label="features /8"]; f16 [label="features /16"]; f32 [label="features /32"];
  fc [label="fc6 3x3 + fc7 1x1 as convolutions", fillcolor="#fdf1e3"];
  s32 [label="score 1x1", fillcolor="#fdf1e3"]; s16 [label="score 1x1 (zero init)", fillcolor="#fdf1e3"];
  s8 [label="score 1x1 (zero init)", fillcolor="#fdf1e3"];
  u32 [label="transposed conv x2, bilinear init", fillcolor="#e7f5e9"];
  u16 [label="transposed conv x2, bilinear init", fillcolor="#e7f5e9"];
  u8 [label="transposed conv x8, bilinear init", fillcolor="#e7f5e9"];
  p16 [label="+", shape=circle]; p8 [label="+", shape=circle];
  out [label="19 class scores  H x W", fillcolor="#ffffff"];
  in -> enc; enc -> f8; enc -> f16; enc -> f32;
  f32 -> fc -> s32 -> u32 -> p16; f16 -> s16 -> p16;
  p16 -> u16 -> p8; f8 -> s8 -> p8; p8 -> u8 -> out;
}
""" % NODE

TRAIN = """python train_cli.py train --arch unet --data ../shared/data/cityscapes_pairs/train --out runs/unet --time-budget 140m
cp runs/unet/best.safetensors weights/unet.safetensors
# likewise --arch fcn_vgg16 and --arch fcn_resnet50"""

EXPORT = """python train_cli.py export --weights weights --format openvino --int8 \\
    --calib ../shared/data/cityscapes_pairs/train --check ../shared/data/cityscapes_pairs/val"""

st.title("About")
st.markdown(
    "This workbench compares three semantic-segmentation networks on street scenes of the "
    f"Cityscapes dataset, labelled with its {len(CLASS_NAMES)} train classes "
    f"({', '.join(CLASS_NAMES)}). Pixels of other (void) classes are ignored in training and scoring."
)

st.header("The architectures")
st.subheader("U-Net")
st.markdown(
    "An encoder–decoder (Ronneberger et al., 2015; here `segmentation_models_pytorch` with a ResNet-18 "
    "encoder). The decoder upsamples step by step and **concatenates** the encoder features of the same "
    "resolution (the dashed skips), so fine detail from early layers reaches the output."
)
st.graphviz_chart(UNET_DOT, width="content")
st.subheader("FCN-8s (VGG16 and ResNet-50 encoders)")
st.markdown(
    "The fully convolutional network of Long, Shelhamer & Darrell (2015). The classifier's fully connected "
    "layers become convolutions; 1x1 convolutions score the classes at strides 32, 16 and 8. The coarse scores "
    "are upsampled by **transposed convolutions initialised to bilinear interpolation** (and left learnable), "
    "**summed** with the scores of the finer features (those skip scores start at zero, so the network begins as "
    "FCN-32s), and a last x8 transposed convolution returns to full resolution. The same head sits on a VGG16 "
    "(with batch norm, trained from scratch) and on a ResNet-50 encoder."
)
st.graphviz_chart(FCN_DOT, width="content")

st.header("The data and its licence")
st.markdown(
    "The models are trained on *Cityscapes Image Pairs*: 2,975 training scenes and a validation split taken from the "
    "[Cityscapes dataset](https://www.cityscapes-dataset.com/) (Cordts et al., 2016), each a 512x256 JPEG with the "
    "photo on the left and the colour-coded label on the right. Labels are decoded back to class ids by nearest "
    "palette colour; colours too far from every class colour are ignored.\n\n"
    "Cityscapes may be used for non-commercial research and teaching and **may not be redistributed**, so no "
    "image of it ships with this app: point the app at your own copy with the `SEG_DATA_DIR` environment variable "
    "or the sidebar setting. Uploaded photos stay in the app's memory and are not stored."
)
st.markdown("Where no Cityscapes data is present (a public Space), the gallery, the Ground truth page, the "
            "Val explorer and the analysis use **16 labelled KITTI scenes that ship with the app** instead: "
            "another city and camera, so expect lower scores than on Cityscapes (the model card has them).")
st.caption(examples.CREDIT)

st.header("How to train")
st.markdown("Each model trains on a CPU within a time budget; its best checkpoint (a safetensors file that "
            "also holds its config and val metrics) goes into `weights/`, where this app finds it "
            "(or set `SEG_WEIGHTS_DIR`).")
st.code(TRAIN, language="bash")

st.header("How it runs fast on a CPU")
st.markdown("Three models per photo make latency the feel of this app. When `weights/` holds a model's "
            "`<name>.int8.xml` file exported from the checkpoint beside it, the app runs that instead: an int8 "
            "OpenVINO model (weights quantised per channel, activation ranges calibrated on 128 training photos, "
            "the upsampling and the argmax inside its graph), several times faster than PyTorch at the same "
            "accuracy (the model card has the figures). A missing or stale export falls back to the PyTorch "
            "checkpoint; the Compare page says which backend ran each model. `SEG_BACKEND=pytorch` forces PyTorch.\n\n"
            "**Mirror-image averaging** (the sidebar switch) is test-time augmentation: each model also segments the "
            "left-right mirrored photo, and the two maps of class probabilities are averaged (in the int8 graph "
            "too). It takes about twice the time and gives slightly better masks; the model card has the val "
            "scores with and without it.")
st.code(EXPORT, language="bash")
