"""Command-line flags of run.py: every flag of the original 3D-MIM run.py with its default,
plus tfastro's own (mixed_precision, jit_compile, strategy, remat, peephole, ...). Library
code never reads FLAGS; run.py turns them into a task's config dataclass."""
from absl import flags


def define_flags():
    """Define the flags once (safe to call twice)."""
    if "is_training" in flags.FLAGS:
        return
    # -- the original run.py, same names and defaults --
    flags.DEFINE_boolean("is_training", True, "Train (True) or only forecast and score (False).")
    flags.DEFINE_string("dataset_name", "mnist", "Dataset kind; tfastro reads 'sn' (3D voxel clips).")
    flags.DEFINE_string("train_data_paths", "data/moving-mnist-example/moving-mnist-train.npz",
                        "Training .npz file(s), comma-separated (concatenated).")
    flags.DEFINE_string("valid_data_paths", "data/moving-mnist-example/moving-mnist-valid.npz",
                        "Validation/test .npz file(s), comma-separated (concatenated).")
    flags.DEFINE_string("save_dir", "checkpoints/mnist_predrnn_pp",
                        "Checkpoint directory; resumed from when it holds checkpoints, never deleted.")
    flags.DEFINE_string("gen_frm_dir", "results/mnist_predrnn_pp",
                        "Directory of forecasts and scores, one sub-directory per iteration.")
    flags.DEFINE_integer("input_length", 10, "Context frames given to the model.")
    flags.DEFINE_integer("total_length", 20, "Frames per clip (context + forecast).")
    flags.DEFINE_integer("img_width", 32, "Grid size along x.")
    flags.DEFINE_integer("img_height", 0, "Grid size along y (0: same as img_width).")
    flags.DEFINE_integer("img_depth", 32, "Grid size along z.")
    flags.DEFINE_integer("img_channel", 1, "Channels per voxel.")
    flags.DEFINE_string("model_name", "mim", "Model: 'mim' (3D Memory-In-Memory, dataset 'sn'), "
                        "'multifield_gan' (conditional GAN of CAMELS maps, dataset 'cmd'), "
                        "'dm2gal' (stellar mass from dark matter, dataset 'tng'), 'turb_cnn' "
                        "(cosmic-ray transport class of turbulent-gas images) or 'turb_unet' "
                        "(density -> CR or magnetic energy density), both dataset 'turbulence', or 'column' "
                        "(prestellar cores: density and velocity from PPV cubes, dataset "
                        "'prestellar').")
    flags.DEFINE_string("pretrained_model", "",
                        "Checkpoint file (.keras) or a save_dir (its latest checkpoint) to start from.")
    flags.DEFINE_string("num_hidden", "64,64,64,64", "Hidden channels per layer, comma-separated.")
    flags.DEFINE_integer("filter_size", 5, "Convolution kernel size.")
    flags.DEFINE_integer("stride", 1, "Convolution stride (only 1, as in the original).")
    flags.DEFINE_integer("patch_size", 2, "Fold patch_size^3 voxel blocks into channels.")
    flags.DEFINE_boolean("layer_norm", True, "Tensor layer norm after every gate convolution.")
    flags.DEFINE_boolean("scheduled_sampling", True, "Feed back true frames with probability eta.")
    flags.DEFINE_integer("sampling_stop_iter", 50000, "Iteration from which eta is 0.")
    flags.DEFINE_float("sampling_start_value", 1.0, "Initial eta.")
    flags.DEFINE_float("sampling_changing_rate", 0.00002, "Decrease of eta per iteration.")
    flags.DEFINE_float("lr", 0.001, "Learning rate (the task's own default for other "
                      "--model_name: dm2gal 1e-5, turb_cnn 1e-3, turb_unet 1e-2, column 1e-3).")
    flags.DEFINE_boolean("reverse_input", True, "Also train on time-reversed clips.")
    flags.DEFINE_boolean("reverse_img", False, "Also train on clips flipped along z.")
    flags.DEFINE_integer("batch_size", 8, "Clips per batch and replica: a step takes batch_size "
                         "x replicas of --strategy (the task's own default for other "
                         "--model_name: dm2gal 32, turb_cnn 64, turb_unet 32, column 8 cores).")
    flags.DEFINE_integer("max_iterations", 80000, "Train up to this iteration.")
    flags.DEFINE_integer("display_interval", 1, "Print the training loss every N iterations.")
    flags.DEFINE_integer("test_interval", 1000, "Forecast and score the validation data every N iterations.")
    flags.DEFINE_integer("snapshot_interval", 1000, "Write a checkpoint every N iterations.")
    flags.DEFINE_integer("num_save_samples", 10, "Clips whose forecasts are saved (npy, png, gif).")
    flags.DEFINE_integer("n_gpu", 0, "GPUs to use, the first n_gpu visible ones (0: all, as the "
                         "original, which counted CUDA_VISIBLE_DEVICES); --strategy=mirrored "
                         "trains on all of them, the others on the first. 0 or 1 without a GPU "
                         "runs on the CPU.")
    flags.DEFINE_boolean("allow_gpu_growth", False, "Allocate GPU memory as needed.")
    # -- tfastro additions --
    flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"],
                      "Alias kept for 3D-MIM scripts: bfloat16 means "
                      "--mixed_precision=mixed_bfloat16.")
    flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_float16", "mixed_bfloat16"],
                      "Keras mixed precision, every --model_name: layers compute in float16 / "
                      "bfloat16, weights, outputs and losses stay float32; mixed_float16 "
                      "scales the loss (LossScaleOptimizer) against gradient underflow.")
    flags.DEFINE_boolean("jit_compile", False, "Compile the training step with XLA "
                         "(bench/jit_compile.py measures what it does for each model).")
    flags.DEFINE_enum("remat", "auto", ["auto", "true", "false"],
                      "Recompute activations in the backward pass; auto: when they would "
                      "take more than a quarter of the memory.")
    flags.DEFINE_enum("peephole", "voxel", ["voxel", "channel"],
                      "Peephole weights per voxel (original) or per channel (any grid size).")
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker_mirrored"],
                      "tf.distribute strategy: default (one device), mirrored (the GPUs of "
                      "--n_gpu on this host), multi_worker_mirrored (every worker process runs "
                      "the same command, TF_CONFIG naming the cluster and its own index; "
                      "workers other than the chief write under <save_dir>/worker<k>, "
                      "<gen_frm_dir>/worker<k>).")
    flags.DEFINE_boolean("fresh_start", False,
                         "Delete the checkpoints in save_dir and train from scratch.")
    flags.DEFINE_integer("keep_checkpoints", 5, "Checkpoints kept in save_dir (the newest).")
    flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and scheduled sampling.")
    # -- multifield emulator (--model_name multifield_gan --dataset_name cmd) --
    flags.DEFINE_string("data_dir", "data/cmd", "Folder of CAMELS multifield maps "
                        "(Maps_{field}_{suite}_{set}_z=0.00.npy, params_{set}_{suite}.txt); for "
                        "turb_cnn / turb_unet the folder of class folders (default data/turbulence); for "
                        "column the folder of prestellar.h5 (default data/prestellar).")
    flags.DEFINE_string("cmd_suite", "IllustrisTNG", "CAMELS suite (B exists only for IllustrisTNG).")
    flags.DEFINE_string("cmd_set", "LH", "CAMELS set (LH, 1P, CV, BE, EX).")
    flags.DEFINE_string("fields", "Mgas,HI,B", "Map channels, comma-separated.")
    flags.DEFINE_integer("resolution", 256, "Map side in pixels (a power of 2, 32 to 256).")
    flags.DEFINE_integer("latent_dim", 256, "Size of the generator's latent vector.")
    flags.DEFINE_string("condition_params", "Omega_m,sigma_8",
                        "Parameters the GAN is conditioned on, comma-separated (empty: unconditional).")
    flags.DEFINE_enum("gan_loss", "wgan-gp", ["wgan-gp", "hinge"], "Adversarial loss.")
    flags.DEFINE_float("gan_width", 1.0, "Multiplier of the GAN's feature channels.")
    flags.DEFINE_integer("n_critic", 2, "Discriminator steps per generator step (2: the critic "
                         "keeps up, which the conditioning on parameters needs).")
    flags.DEFINE_string("generate_params", "",
                        "With --is_training=False: parameter vectors to generate maps at, "
                        "';'-separated, each in --condition_params order (e.g. '0.3,0.8;0.4,0.9').")
    flags.DEFINE_integer("num_generated_maps", 15, "Maps generated per --generate_params vector.")
    flags.DEFINE_integer("eval_maps", 150, "Real test maps (and as many generated) in an evaluation.")
    # -- dm2gal (--model_name dm2gal --dataset_name tng) --
    flags.DEFINE_string("tng_dark_snapshot", "", "Gravity-only snapshot: folder of "
                        "snap_NNN.<i>.hdf5 chunks (or one file).")
    flags.DEFINE_string("tng_dark_groups", "", "Gravity-only group catalogue folder "
                        "(fof_subhalo_tab_NNN.<i>.hdf5).")
    flags.DEFINE_string("tng_hydro_groups", "", "Hydro group catalogue folder (stellar masses).")
    flags.DEFINE_string("field_dir", "data/dm2gal", "Folder of the mass grids and network "
                        "arrays (.npy, computed from the TNG files when absent, then reused).")
    flags.DEFINE_integer("grid_size", 2048, "Voxels per side of the mass grids.")
    flags.DEFINE_string("test_region", "64,933", "Test box 'lo,hi' (voxels, half-open, every axis).")
    flags.DEFINE_string("validation_region", "1000,1801", "Validation box 'lo,hi'.")
    flags.DEFINE_integer("window", 65, "Side of the input cube around a centre voxel (odd).")
    flags.DEFINE_float("stellar_threshold", 1e8, "Centres: voxels with more stellar mass (Msun/h).")
    flags.DEFINE_integer("dm2gal_ch", 64, "Channels of dm2gal's first stage.")
    flags.DEFINE_boolean("dm2gal_batchnorm", True, "Batch norm after every dm2gal convolution "
                         "(the original); off with --standardisation training.")
    flags.DEFINE_enum("dm2gal_loss", "mse", ["mse", "huber"], "dm2gal loss.")
    flags.DEFINE_float("weight_decay", 0.0, "dm2gal: coupled L2 decay of its kernels; turb_cnn / "
                      "turb_unet: AdamW's decoupled decay (default 1e-4 / 1e-2).")
    flags.DEFINE_enum("stitch", "all", ["all", "above_threshold"], "Stitch every test voxel, or "
                      "only those whose true stellar mass exceeds the threshold (uses the truth).")
    flags.DEFINE_enum("standardisation", "original", ["original", "training"], "Standardise "
                      "log10(1 + M) with the original constants or over the training samples.")
    flags.DEFINE_boolean("weighted_sampling", True, "Draw training centres with weight "
                         "1/count of their target's bin (100 bins), as the original.")
    flags.DEFINE_string("bispectrum_k", "", "'k1,k2' (h/Mpc) of the test-cube bispectrum "
                        "(default 3 and 4 fundamental modes).")
    flags.DEFINE_integer("regressor_steps", 1000,
                         "Training steps of the (Omega_m, sigma_8) regressor of the conditioning check.")
    # -- cosmic-ray transport from turbulent gas (--model_name turb_cnn|turb_unet, --dataset_name turbulence) --
    flags.DEFINE_string("turb_classes", "mhd,cr_advection,cr_diffusion,cr_diffusion_100kappa,"
                        "cr_streaming", "Classes in label order, comma-separated: each a folder of "
                        "snapshot FITS cubes under --data_dir (or an absolute folder).")
    flags.DEFINE_string("turb_field", "density", "FITS field (EXTNAME) the networks read.")
    flags.DEFINE_string("turb_target", "magnetic_energy_density",
                        "FITS field the U-net predicts from --turb_field.")
    flags.DEFINE_integer("tile_size", 128, "Side of the image tiles cut from each slice (pixels).")
    flags.DEFINE_boolean("flattened_power", False, "Keep only Fourier phases of each slice "
                         "(|F| set to 1): what phases alone tell.")
    flags.DEFINE_integer("projection", 1, "Average this many adjacent slices into one image "
                         "(8: closer to observed column densities).")
    flags.DEFINE_float("ssim_alpha", 0.02, "U-net loss MSE + alpha (1 - SSIM).")
    flags.DEFINE_integer("epochs", 50, "Most training epochs (early stopping may end sooner).")
    flags.DEFINE_integer("patience", 5, "Early stopping: epochs without a better validation loss.")
    flags.DEFINE_string("blur_sigmas", "0,2,4,6,8", "Gaussian blur widths (pixels) of the blur sweep.")
    flags.DEFINE_integer("occlusion_patch", 0, "Side of the occluded patches (0: no occlusion maps).")
    flags.DEFINE_integer("saliency_images", 8, "Test images drawn with their saliency maps.")
    # -- prestellar cores (--model_name column --dataset_name prestellar) --
    flags.DEFINE_integer("column_width", 16, "Filters of every Conv3D of the column network.")
    flags.DEFINE_integer("column_depth", 3, "Conv3D blocks of the column network's local path.")
    flags.DEFINE_integer("spectral_kernel", 7, "Kernel length along the velocity axis.")
    flags.DEFINE_boolean("column_context", True, "Global-context path: every column also sees "
                         "a summary of the whole cube.")
    flags.DEFINE_float("column_dropout", 0.1, "Dropout rate (kept on for the MC-dropout "
                       "uncertainty).")
    flags.DEFINE_integer("mc_samples", 32, "Forward passes of the MC-dropout uncertainty.")
    flags.DEFINE_integer("scan_window", 0, "Predict test cubes window by window of this side "
                         "(pixels; equal to one pass, bounded memory); 0: one pass.")
