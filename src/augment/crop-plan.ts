/**
 * Every random choice of multi-crop, drawn in plain JS into a plan before
 * any tensor work (crop boxes as torchvision's RandomResizedCrop draws them,
 * flips, colour-jitter factors and order, grayscale, blur sigma, solarize),
 * so an augmented batch is a pure function of (images, config, rng state).
 */
import { Rng } from '../util/rng';
import { roundHalfEven } from '../util/round';
import { ViewConfig } from './crop-config';


/** A crop rectangle in input pixels, plus whether the output is mirrored. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
  flip: boolean;
}

/**
 * torchvision `RandomResizedCrop.get_params`: up to 10 tries of (area
 * uniform in scale * H * W, log-uniform aspect w/h in ratio) that fit, then a
 * centre crop clamped to the ratio range.
 */
export function sampleCropBox(
  imgH: number,
  imgW: number,
  scale: [number, number],
  ratio: [number, number],
  rng: Rng,
): Omit<CropBox, 'flip'> {
  const area = imgH * imgW;
  const logR0 = Math.log(ratio[0]);
  const logR1 = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logR0, logR1));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= imgW && h > 0 && h <= imgH) {
      return { top: rng.randint(0, imgH - h), left: rng.randint(0, imgW - w), height: h, width: w };
    }
  }
  const inRatio = imgW / imgH;
  let w = imgW;
  let h = imgH;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    h = roundHalfEven(w / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    w = roundHalfEven(h * Math.max(ratio[0], ratio[1]));
  }
  return { top: Math.floor((imgH - h) / 2), left: Math.floor((imgW - w) / 2), height: h, width: w };
}

/** Colour-jitter draws for one image; `order` lists op ids 0..3 = brightness, contrast, saturation, hue. */
export interface JitterParams {
  order: number[];
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** All random choices of one view for a batch. `null` = op skipped for that image. */
export interface ViewPlan {
  boxes: CropBox[];
  jitter: (JitterParams | null)[];
  grayscale: boolean[];
  blurSigma: (number | null)[];
  solarize: boolean[];
}

function factorRange(x: number): [number, number] {
  return [Math.max(0, 1 - x), 1 + x];
}

/** Draws every random choice for one view, image by image, in the official op order. */
export function sampleViewPlan(batch: number, imgH: number, imgW: number, view: ViewConfig, rng: Rng): ViewPlan {
  const plan: ViewPlan = { boxes: [], jitter: [], grayscale: [], blurSigma: [], solarize: [] };
  const cj = view.colorJitter;
  for (let b = 0; b < batch; b++) {
    const box = sampleCropBox(imgH, imgW, view.scale, view.ratio, rng);
    plan.boxes.push({ ...box, flip: rng.bernoulli(view.flipProb) });
    if (rng.bernoulli(cj.prob)) {
      const order = rng.permutation(4);
      const [b0, b1] = factorRange(cj.brightness);
      const [c0, c1] = factorRange(cj.contrast);
      const [s0, s1] = factorRange(cj.saturation);
      plan.jitter.push({
        order,
        brightness: rng.uniform(b0, b1),
        contrast: rng.uniform(c0, c1),
        saturation: rng.uniform(s0, s1),
        hue: rng.uniform(-cj.hue, cj.hue),
      });
    } else {
      plan.jitter.push(null);
    }
    plan.grayscale.push(rng.bernoulli(view.grayscaleProb));
    // DINO's GaussianBlur tests `random() <= p`; with p in {0, 1} both forms agree.
    plan.blurSigma.push(rng.bernoulli(view.blurProb) ? rng.uniform(view.blurSigma[0], view.blurSigma[1]) : null);
    plan.solarize.push(rng.bernoulli(view.solarizeProb));
  }
  return plan;
}

