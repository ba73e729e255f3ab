"""The flags of the editing modes that name input files (the numbers are config keys:
``--strength``, ``--jump_length``, ``--jump_n_sample``, ``--frames``, config/flags.py)."""
from __future__ import annotations

EDIT_MODES = ("encode", "interpolate", "img2img", "inpaint")
EDIT_MODES_HELP = ("; encode: images to their latents x_T by the DDIM ODE (.npz); interpolate: "
                   "frames between two latents (--endpoints); img2img: SDEdit of --init_image "
                   "(--strength); inpaint: RePaint of --init_image where --mask is black")

# flag -> the modes that read it (cli/unread.py refuses it elsewhere)
EDIT_FLAG_MODES = {"init_image": ("encode", "img2img", "inpaint"), "mask": ("inpaint",),
                   "endpoints": ("interpolate",), "strength": ("img2img",),
                   "jump_length": ("inpaint",), "jump_n_sample": ("inpaint",),
                   "frames": ("interpolate",)}


def add_edit_args(g) -> None:
    g.add_argument("--init_image", metavar="PATH", default=None,
                   help="encode | img2img | inpaint: an image file or a folder of images (PNG, "
                        "JPEG, WebP) of the model's size and channels; encode without it: the "
                        "data set's test split, N of --num_images")
    g.add_argument("--mask", metavar="FILE", default=None,
                   help="inpaint: an image of the model's size, white where the image is kept, "
                        "black where it is generated")
    g.add_argument("--endpoints", metavar="A,B", default=None,
                   help="interpolate: the two ends, each a sampling seed (its image 0's x_T) or "
                        "an image file (encoded), e.g. 3,7 or a.png,b.png (default: 0,1)")
